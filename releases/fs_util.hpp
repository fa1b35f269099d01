#pragma once
// Small POSIX helpers the release store is built on: durable directory
// updates, atomic file writes and unique temporary names.
#include "releases/result.hpp"

#include <filesystem>
#include <string>
#include <string_view>

namespace releasectl::releases {

namespace fs = std::filesystem;

// "No such file or directory" for an errno value.
std::string errno_text(int err);

// fsync(2) a directory so that entries created/renamed in it survive a crash.
Status fsync_directory(const fs::path& dir);

// 8 random hex characters for temporary names (collisions are retried by callers
// through O_EXCL / RENAME_NOREPLACE semantics, so this need not be perfect).
std::string random_suffix();

// Write a whole file atomically: temp file in the same directory, fsync,
// rename over `path`, fsync of the directory.
Status write_file_atomic(const fs::path& path, std::string_view content);

// Read a whole (small) file.
Result<std::string> read_file(const fs::path& path);

// rename(2) that refuses to replace an existing entry (RENAME_NOREPLACE); used so
// that two creates of the same release id can never overwrite each other.
Status rename_no_replace(const fs::path& from, const fs::path& to);

// remove_all that first makes directories owner-writable (a release may contain
// read-only directories) and reports the first failure as a sentence.
Status remove_tree(const fs::path& path);

} // namespace releasectl::releases
