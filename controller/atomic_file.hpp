#pragma once
// Crash-safe file replacement: write a temp file next to the target, fsync it,
// rename it over the target, fsync the directory. A reader sees the old content
// or the new, never a torn mix; after a power cut the rename is durable.
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace releasectl {

struct FileResult {
    bool ok = true;
    std::string error; // "open /x/state.json.tmp: Permission denied"
    explicit operator bool() const { return ok; }
};

FileResult write_file_atomically(const std::string& path, std::string_view content, mode_t mode = 0644);

// Whole file; nullopt with *error set when it cannot be read (missing: ENOENT text,
// and *missing = true if given).
std::optional<std::string> read_whole_file(const std::string& path, std::string* error, bool* missing = nullptr);

} // namespace releasectl
