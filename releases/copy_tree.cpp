#include "releases/copy_tree.hpp"

#include "releases/fs_util.hpp"
#include "releases/safe_paths.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace releasectl::releases {

namespace {

void copy_times(const fs::path& to, const struct stat& from, bool is_link) {
    const struct timespec times[2] = {from.st_atim, from.st_mtim};
    ::utimensat(AT_FDCWD, to.c_str(), times, is_link ? AT_SYMLINK_NOFOLLOW : 0);
}

Status copy_directory(const fs::path& source_root, const fs::path& destination_root, const fs::path& rel) {
    const fs::path from_dir = rel.empty() ? source_root : source_root / rel;
    std::error_code ec;
    fs::directory_iterator it(from_dir, ec);
    if (ec)
        return Status::failure(fmt::format("cannot read directory {}: {}", from_dir.string(), ec.message()));
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec)
            return Status::failure(fmt::format("cannot read directory {}: {}", from_dir.string(), ec.message()));
        const fs::path entry_rel = rel / it->path().filename();
        const fs::path from = it->path();
        const fs::path to = destination_root / entry_rel;
        struct stat st {};
        if (::lstat(from.c_str(), &st) != 0)
            return Status::failure(fmt::format("cannot stat {}: {}", from.string(), errno_text(errno)));

        if (S_ISLNK(st.st_mode)) {
            auto target = fs::read_symlink(from, ec);
            if (ec)
                return Status::failure(fmt::format("cannot read symlink {}: {}", from.string(), ec.message()));
            if (!symlink_target_stays_inside(entry_rel, target))
                return Status::failure(fmt::format("symlink '{}' -> '{}' points outside the release",
                                                   entry_rel.string(), target.string()));
            if (::symlink(target.c_str(), to.c_str()) != 0)
                return Status::failure(fmt::format("cannot create symlink {}: {}", to.string(), errno_text(errno)));
            copy_times(to, st, true);
        } else if (S_ISDIR(st.st_mode)) {
            if (::mkdir(to.c_str(), 0700) != 0)
                return Status::failure(fmt::format("cannot create directory {}: {}", to.string(), errno_text(errno)));
            if (auto status = copy_directory(source_root, destination_root, entry_rel); !status)
                return status;
            ::chmod(to.c_str(), (st.st_mode & 07777) | S_IRWXU);
            copy_times(to, st, false);
        } else if (S_ISREG(st.st_mode)) {
            fs::copy_file(from, to, fs::copy_options::none, ec);
            if (ec)
                return Status::failure(fmt::format("cannot copy {}: {}", from.string(), ec.message()));
            ::chmod(to.c_str(), st.st_mode & 0777); // no setuid/setgid in releases
            copy_times(to, st, false);
        } else {
            return Status::failure(fmt::format("'{}' is a device, FIFO or socket; releases hold only files, "
                                               "directories and symlinks",
                                               entry_rel.string()));
        }
    }
    return Status::success();
}

} // namespace

Status copy_tree(const fs::path& source, const fs::path& destination) {
    struct stat st {};
    if (::stat(source.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return Status::failure(fmt::format("{} is not a directory", source.string()));
    if (::mkdir(destination.c_str(), 0700) != 0)
        return Status::failure(fmt::format("cannot create {}: {}", destination.string(), errno_text(errno)));
    if (auto status = copy_directory(source, destination, {}); !status)
        return status;
    ::chmod(destination.c_str(), (st.st_mode & 07777) | S_IRWXU);
    return check_tree_symlinks(destination);
}

} // namespace releasectl::releases
