#include "releases/layout.hpp"

#include <fmt/format.h>

#include <string>

namespace releasectl::releases {

fs::path StorePaths::bad_mark_file(std::string_view id) const {
    return bad_dir() / (std::string(id) + ".json");
}

fs::path StorePaths::meta_file(std::string_view id) const {
    return meta_dir() / (std::string(id) + ".json");
}

Status ensure_layout(const fs::path& root) {
    StorePaths paths(root);
    for (const fs::path& dir : {paths.root, paths.releases_dir(), paths.shared_dir(), paths.slots_dir(),
                                paths.state_dir(), paths.logs_dir()}) {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec)
            return Status::failure(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
        if (!fs::is_directory(dir, ec))
            return Status::failure(fmt::format("{} exists but is not a directory", dir.string()));
    }
    return Status::success();
}

} // namespace releasectl::releases
