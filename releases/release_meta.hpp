#pragma once
// What the store remembers about a release beside it (releases are immutable
// and an app writing into its directory must not change its age):
// <root>/.releasectl/releases/<id>.json = {id, created, created_unix_ns, source}.
#include "releases/release_id.hpp"
#include "releases/result.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace releasectl::releases {

namespace fs = std::filesystem;

struct ReleaseMeta {
    std::string id;
    Clock::time_point created{};
    std::string source; // the directory or archive it was made from
};

Status write_release_meta(const fs::path& root, const ReleaseMeta& meta);
std::optional<ReleaseMeta> read_release_meta(const fs::path& root, std::string_view id);
void remove_release_meta(const fs::path& root, std::string_view id);

} // namespace releasectl::releases
