#pragma once
// The store's pointers: slots/<slot>, current and previous. Every change is
// symlink(tmp) + rename(tmp, name) + fsync(dir), so a reader resolving the
// link at any instant sees either the old or the new target, never nothing.
#include "releases/result.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace releasectl::releases {

namespace fs = std::filesystem;

// Points `link_path` at `target` atomically (replacing an existing symlink).
Status atomic_symlink(const fs::path& link_path, const fs::path& target);

// readlink(2); nullopt if `link` is missing or not a symlink.
std::optional<fs::path> read_link(const fs::path& link);

// The release id a store link names (the last component of its target), or
// nullopt if the link is missing.
std::optional<std::string> linked_release_id(const fs::path& link);

// slots/<slot> -> ../releases/<id>; current -> releases/<id>; previous -> releases/<id>.
// Each refuses a release that does not exist.
Status bind_slot(const fs::path& root, std::string_view slot, std::string_view id);
Status set_current(const fs::path& root, std::string_view id);
Status set_previous(const fs::path& root, std::string_view id);

std::optional<std::string> slot_release(const fs::path& root, std::string_view slot);
std::optional<std::string> current_release(const fs::path& root);
std::optional<std::string> previous_release(const fs::path& root);

// Every slots/<name> link: slot name -> release id.
std::map<std::string, std::string> slot_bindings(const fs::path& root);

} // namespace releasectl::releases
