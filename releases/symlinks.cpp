#include "releases/symlinks.hpp"

#include "releases/fs_util.hpp"
#include "releases/layout.hpp"
#include "releases/release_id.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <sys/stat.h>
#include <unistd.h>

namespace releasectl::releases {

Status atomic_symlink(const fs::path& link_path, const fs::path& target) {
    const fs::path dir = link_path.parent_path().empty() ? fs::path(".") : link_path.parent_path();
    fs::path tmp;
    // A fresh temporary name: symlink(2) fails with EEXIST rather than clobbering.
    for (int attempt = 0;; ++attempt) {
        tmp = dir / fmt::format(".{}.tmp-{}", link_path.filename().string(), random_suffix());
        if (::symlink(target.c_str(), tmp.c_str()) == 0)
            break;
        if (errno != EEXIST || attempt >= 8)
            return Status::failure(
                fmt::format("cannot create symlink {} -> {}: {}", tmp.string(), target.string(), errno_text(errno)));
    }
    if (::rename(tmp.c_str(), link_path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return Status::failure(fmt::format("cannot point {} at {}: {}", link_path.string(), target.string(),
                                           errno_text(err)));
    }
    return fsync_directory(dir);
}

std::optional<fs::path> read_link(const fs::path& link) {
    char buffer[4096];
    ssize_t n = ::readlink(link.c_str(), buffer, sizeof buffer);
    if (n < 0 || static_cast<std::size_t>(n) >= sizeof buffer)
        return std::nullopt;
    return fs::path(std::string(buffer, static_cast<std::size_t>(n)));
}

std::optional<std::string> linked_release_id(const fs::path& link) {
    auto target = read_link(link);
    if (!target)
        return std::nullopt;
    fs::path normal = target->lexically_normal();
    std::string name = normal.filename().string();
    if (name.empty()) // "releases/<id>/" normalises to a trailing empty filename
        name = normal.parent_path().filename().string();
    if (name.empty() || name == "." || name == "..")
        return std::nullopt;
    return name;
}

namespace {

Status require_release(const StorePaths& paths, std::string_view id) {
    std::string why;
    if (!is_valid_release_id(id, &why))
        return Status::failure(why);
    struct stat st {};
    const fs::path dir = paths.release_dir(id);
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return Status::failure(fmt::format("release {} does not exist ({} is not a directory)", id, dir.string()));
    return Status::success();
}

} // namespace

Status bind_slot(const fs::path& root, std::string_view slot, std::string_view id) {
    StorePaths paths(root);
    std::string why;
    if (!is_valid_slot_name(slot, &why))
        return Status::failure(why);
    if (auto status = require_release(paths, id); !status)
        return status;
    std::error_code ec;
    fs::create_directories(paths.slots_dir(), ec);
    return atomic_symlink(paths.slot_link(slot), fs::path("..") / "releases" / id);
}

Status set_current(const fs::path& root, std::string_view id) {
    StorePaths paths(root);
    if (auto status = require_release(paths, id); !status)
        return status;
    return atomic_symlink(paths.current_link(), fs::path("releases") / id);
}

Status set_previous(const fs::path& root, std::string_view id) {
    StorePaths paths(root);
    if (auto status = require_release(paths, id); !status)
        return status;
    return atomic_symlink(paths.previous_link(), fs::path("releases") / id);
}

std::optional<std::string> slot_release(const fs::path& root, std::string_view slot) {
    return linked_release_id(StorePaths(root).slot_link(slot));
}

std::optional<std::string> current_release(const fs::path& root) {
    return linked_release_id(StorePaths(root).current_link());
}

std::optional<std::string> previous_release(const fs::path& root) {
    return linked_release_id(StorePaths(root).previous_link());
}

std::map<std::string, std::string> slot_bindings(const fs::path& root) {
    std::map<std::string, std::string> bindings;
    std::error_code ec;
    for (auto it = fs::directory_iterator(StorePaths(root).slots_dir(), ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (!is_valid_slot_name(name)) // skips our own ".blue.tmp-*" names
            continue;
        if (auto id = linked_release_id(it->path()))
            bindings.emplace(std::move(name), std::move(*id));
    }
    return bindings;
}

} // namespace releasectl::releases
