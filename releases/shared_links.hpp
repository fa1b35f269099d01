#pragma once
// Shared files and directories (Capistrano's linked_dirs / linked_files):
// `[releases] shared = ["storage", ".env"]` makes releases/<id>/storage a
// symlink to shared/storage in every new release.
#include "releases/result.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace releasectl::releases {

namespace fs = std::filesystem;

enum class SharedKind { directory, file };

// The rule for creating a missing shared entry (when neither shared/ nor the
// release has it): a trailing '/' ("cache/") forces a directory; otherwise a
// final component containing a dot (".env", "config/database.yml") is a file
// and anything else ("storage", "log") a directory.
SharedKind shared_kind_for(const std::string& entry);

// Links each shared entry into `release_dir` (a release being built, placed
// directly under releases/ so the relative links stay valid after the rename):
//  - release has it, shared/ does not: the release's copy moves into shared/
//    (seeding it once);
//  - both have it: shared/ wins, the release's copy is deleted;
//  - neither has it: shared/ gets an empty directory or file (shared_kind_for);
//  then releases/<id>/<p> -> ../../shared/<p> (relative, one ".." per level).
// Entries must be relative paths without "..".
Status link_shared(const fs::path& root, const fs::path& release_dir, const std::vector<std::string>& shared);

} // namespace releasectl::releases
