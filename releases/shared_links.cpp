#include "releases/shared_links.hpp"

#include "releases/fs_util.hpp"
#include "releases/layout.hpp"
#include "releases/safe_paths.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace releasectl::releases {

SharedKind shared_kind_for(const std::string& entry) {
    if (!entry.empty() && entry.back() == '/')
        return SharedKind::directory;
    const std::string name = fs::path(entry).filename().string();
    return name.find('.') != std::string::npos ? SharedKind::file : SharedKind::directory;
}

namespace {

bool exists_no_follow(const fs::path& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

Status move_into_shared(const fs::path& from, const fs::path& to) {
    if (::rename(from.c_str(), to.c_str()) == 0)
        return Status::success();
    if (errno != EXDEV)
        return Status::failure(fmt::format("cannot move {} to {}: {}", from.string(), to.string(), errno_text(errno)));
    std::error_code ec; // shared/ on another filesystem: copy, then delete
    fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
    if (ec)
        return Status::failure(fmt::format("cannot copy {} to {}: {}", from.string(), to.string(), ec.message()));
    return remove_tree(from);
}

Status create_shared_entry(const fs::path& path, SharedKind kind) {
    std::error_code ec;
    if (kind == SharedKind::directory) {
        fs::create_directories(path, ec);
        if (ec)
            return Status::failure(fmt::format("cannot create {}: {}", path.string(), ec.message()));
        return Status::success();
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST)
        return Status::failure(fmt::format("cannot create {}: {}", path.string(), errno_text(errno)));
    if (fd >= 0)
        ::close(fd);
    return Status::success();
}

} // namespace

Status link_shared(const fs::path& root, const fs::path& release_dir, const std::vector<std::string>& shared) {
    StorePaths paths(root);
    for (const std::string& entry : shared) {
        std::string why;
        auto rel = clean_relative_path(entry, &why);
        if (!rel || rel->empty())
            return Status::failure(fmt::format("[releases] shared entry '{}': {}", entry,
                                               rel ? "names the release itself" : why));
        const fs::path in_release = release_dir / *rel;
        const fs::path in_shared = paths.shared_dir() / *rel;
        std::error_code ec;
        fs::create_directories(in_shared.parent_path(), ec);
        if (ec)
            return Status::failure(fmt::format("cannot create {}: {}", in_shared.parent_path().string(), ec.message()));

        const bool release_has = exists_no_follow(in_release);
        const bool shared_has = exists_no_follow(in_shared);
        if (release_has && !shared_has) {
            if (auto status = move_into_shared(in_release, in_shared); !status)
                return status;
        } else if (release_has) {
            if (auto status = remove_tree(in_release); !status)
                return status;
        } else if (!shared_has) {
            if (auto status = create_shared_entry(in_shared, shared_kind_for(entry)); !status)
                return status;
        }

        fs::create_directories(in_release.parent_path(), ec);
        if (ec)
            return Status::failure(
                fmt::format("cannot create {}: {}", in_release.parent_path().string(), ec.message()));
        // From releases/<id>/<dirs of p>/ up to <root>: one ".." per level below root.
        fs::path up;
        const auto depth = std::distance(rel->begin(), rel->end()) - 1 + 2; // dirs of p, <id>, releases
        for (long i = 0; i < depth; ++i)
            up /= "..";
        const fs::path target = up / "shared" / *rel;
        if (::symlink(target.c_str(), in_release.c_str()) != 0)
            return Status::failure(
                fmt::format("cannot link {} -> {}: {}", in_release.string(), target.string(), errno_text(errno)));
    }
    return Status::success();
}

} // namespace releasectl::releases
