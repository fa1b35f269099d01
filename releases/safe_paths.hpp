#pragma once
// Containment rules for release contents: a release is self-contained, so no
// path in it may be absolute or climb out with "..", and no symlink in it may
// resolve to anything outside it (shared/ links are added after these checks).
#include "releases/result.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace releasectl::releases {

namespace fs = std::filesystem;

// "./app/x.py" -> "app/x.py"; "." or "./" -> "" (the tree root itself).
// nullopt (and *why) for absolute paths, ".." components, NUL bytes, empty input.
std::optional<fs::path> clean_relative_path(std::string_view raw, std::string* why);

// Does a symlink located at `link_rel` (relative to the tree root) whose
// target is `target` stay inside the tree, judged lexically?
bool symlink_target_stays_inside(const fs::path& link_rel, const fs::path& target);

// Resolves every symlink under `tree_root` through the real tree, following
// chains of links, and fails naming the first one whose resolution leaves the
// tree (e.g. a -> "." and b -> "a/.." are each harmless lexically, not together).
// Dangling links that stay inside are allowed.
Status check_tree_symlinks(const fs::path& tree_root);

} // namespace releasectl::releases
