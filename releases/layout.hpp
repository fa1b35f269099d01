#pragma once
// Where things live under a release store root (see DESIGN.md, "Release store"):
//   releases/<id>/  shared/  slots/<slot>  current  previous  .releasectl/{logs,bad,releases}/
#include "releases/result.hpp"

#include <filesystem>
#include <string_view>

namespace releasectl::releases {

namespace fs = std::filesystem;

struct StorePaths {
    fs::path root;

    explicit StorePaths(fs::path store_root) : root(std::move(store_root)) {}

    fs::path releases_dir() const { return root / "releases"; }
    fs::path release_dir(std::string_view id) const { return releases_dir() / id; }
    fs::path shared_dir() const { return root / "shared"; }
    fs::path slots_dir() const { return root / "slots"; }
    fs::path slot_link(std::string_view slot) const { return slots_dir() / slot; }
    fs::path current_link() const { return root / "current"; }
    fs::path previous_link() const { return root / "previous"; }
    fs::path state_dir() const { return root / ".releasectl"; }
    fs::path logs_dir() const { return state_dir() / "logs"; }
    fs::path bad_dir() const { return state_dir() / "bad"; }
    fs::path bad_mark_file(std::string_view id) const;
    fs::path meta_dir() const { return state_dir() / "releases"; }
    fs::path meta_file(std::string_view id) const;
};

// Creates releases/, shared/, slots/, .releasectl/, .releasectl/logs/ (and the
// root itself) where missing. Existing entries are left alone.
Status ensure_layout(const fs::path& root);

} // namespace releasectl::releases
