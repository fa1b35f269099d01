#include "releases/fs_util.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

namespace releasectl::releases {

std::string errno_text(int err) {
    return std::strerror(err);
}

Status fsync_directory(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return Status::failure(fmt::format("cannot open directory {}: {}", dir.string(), errno_text(errno)));
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0)
        return Status::failure(fmt::format("cannot fsync directory {}: {}", dir.string(), errno_text(err)));
    return Status::success();
}

std::string random_suffix() {
    static thread_local std::mt19937_64 generator{std::random_device{}()};
    return fmt::format("{:08x}", static_cast<std::uint32_t>(generator()));
}

Status write_file_atomic(const fs::path& path, std::string_view content) {
    const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    const fs::path tmp = dir / fmt::format(".{}.tmp-{}", path.filename().string(), random_suffix());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return Status::failure(fmt::format("cannot create {}: {}", tmp.string(), errno_text(errno)));
    std::size_t written = 0;
    while (written < content.size()) {
        ssize_t n = ::write(fd, content.data() + written, content.size() - written);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            return Status::failure(fmt::format("cannot write {}: {}", tmp.string(), errno_text(err)));
        }
        written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return Status::failure(fmt::format("cannot flush {}: {}", tmp.string(), errno_text(err)));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return Status::failure(fmt::format("cannot rename {} to {}: {}", tmp.string(), path.string(), errno_text(err)));
    }
    return fsync_directory(dir);
}

Result<std::string> read_file(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return Result<std::string>::failure(fmt::format("cannot open {}: {}", path.string(), errno_text(errno)));
    std::string content;
    char buffer[8192];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return Result<std::string>::failure(fmt::format("cannot read {}: {}", path.string(), errno_text(err)));
        }
        if (n == 0)
            break;
        content.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return Result<std::string>::success(std::move(content));
}

Status rename_no_replace(const fs::path& from, const fs::path& to) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0)
        return Status::success();
    int err = errno;
    if (err == EINVAL || err == ENOSYS) {
        // Filesystem without RENAME_NOREPLACE: check, then rename (a narrow race
        // remains, but only between two creates of the same explicit id).
        struct stat st {};
        if (::lstat(to.c_str(), &st) == 0)
            return Status::failure(fmt::format("{} already exists", to.string()));
        if (::rename(from.c_str(), to.c_str()) == 0)
            return Status::success();
        err = errno;
    }
    if (err == EEXIST || err == ENOTEMPTY)
        return Status::failure(fmt::format("{} already exists", to.string()));
    return Status::failure(fmt::format("cannot rename {} to {}: {}", from.string(), to.string(), errno_text(err)));
}

Status remove_tree(const fs::path& path) {
    std::error_code ec;
    // Directories without owner write/exec permission cannot be emptied: fix them first.
    if (fs::is_directory(fs::symlink_status(path, ec))) {
        fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
        for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
            std::error_code entry_ec;
            if (it->is_directory(entry_ec) && !it->is_symlink(entry_ec))
                fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, entry_ec);
        }
    }
    ec.clear();
    fs::remove_all(path, ec);
    if (ec)
        return Status::failure(fmt::format("cannot remove {}: {}", path.string(), ec.message()));
    return Status::success();
}

} // namespace releasectl::releases
