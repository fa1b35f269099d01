#pragma once
// Unpacking a tar archive (.tar, .tar.gz, .tgz, any compression libarchive
// reads) into a new release, refusing anything that could reach outside it.
#include "releases/result.hpp"

#include <filesystem>

namespace releasectl::releases {

namespace fs = std::filesystem;

// Unpacks `archive` into the existing, empty directory `destination`.
// Refused, with a sentence naming the entry: absolute paths, ".." components,
// symlinks whose target leaves the release (also through chains of links),
// hard links to anything but a regular file already unpacked, devices, FIFOs
// and sockets. A truncated or corrupt archive fails with "truncated or corrupt".
// Modes are kept without setuid/setgid; directories stay owner-writable.
// The caller removes `destination` on failure.
Status unpack_archive(const fs::path& archive, const fs::path& destination);

} // namespace releasectl::releases
