#pragma once
// Copying a directory into a new release.
#include "releases/result.hpp"

#include <filesystem>

namespace releasectl::releases {

namespace fs = std::filesystem;

// Copies `source` to `destination` (which must not exist yet): regular files
// with their mode and mtime, directories (always owner-writable, so that the
// store can later delete them), and symlinks as symlinks when they stay inside
// the tree. Escaping symlinks and special files (devices, FIFOs, sockets) are
// refused with a sentence naming the entry. The caller cleans up on failure.
Status copy_tree(const fs::path& source, const fs::path& destination);

} // namespace releasectl::releases
