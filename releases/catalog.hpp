#pragma once
// What the store holds: listing releases with their bindings and marks,
// retention, and choosing the rollback target.
#include "releases/bad_marks.hpp"
#include "releases/release_id.hpp"
#include "releases/result.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace releasectl::releases {

namespace fs = std::filesystem;

struct ReleaseInfo {
    std::string id;
    fs::path path;
    Clock::time_point created{}; // from .releasectl/releases/<id>.json, else the directory's mtime
    std::string source;          // what it was created from, when known
    std::uint64_t size_bytes = 0;
    std::vector<std::string> slots; // slots whose link names this release
    bool is_current = false;
    bool is_previous = false;
    std::optional<BadMark> bad;

    // Named by a slot, current or previous: retention must keep it.
    bool is_protected() const { return !slots.empty() || is_current || is_previous; }
};

// Releases under root, oldest first (created time, then id). Temporary
// (.tmp-*) and trash (.trash-*) directories are not releases.
std::vector<ReleaseInfo> list_releases(const fs::path& root, bool with_sizes = true);

// Pure: given releases oldest first, the ids retention removes: all but the
// newest `keep`, minus any protected release.
std::vector<std::string> select_for_removal(const std::vector<ReleaseInfo>& oldest_first, unsigned keep);

struct RetentionResult {
    std::vector<std::string> removed;
    std::vector<std::string> errors; // one sentence per release that could not be removed
};

// Applies select_for_removal. Each release is first renamed to
// releases/.trash-<id>-<random> (atomic: it is gone from the store at once),
// then deleted; its bad mark and metadata go with it. Leftover .trash-* directories from
// an interrupted run are deleted too.
RetentionResult retention(const fs::path& root, unsigned keep);

// Pure: the newest release older than `current_id` that is not marked bad.
std::optional<std::string> pick_rollback_target(const std::vector<ReleaseInfo>& oldest_first,
                                                std::string_view current_id);
// The same on the store, relative to `current`.
std::optional<std::string> rollback_target(const fs::path& root);

} // namespace releasectl::releases
