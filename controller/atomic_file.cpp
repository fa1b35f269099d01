#include "controller/atomic_file.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <filesystem>
#include <unistd.h>
#include <utility>

namespace releasectl {

namespace {

std::string errno_text(const char* what, const std::string& path) {
    return std::string(what) + " " + path + ": " + std::strerror(errno);
}

// Closes on scope exit unless released.
struct FdGuard {
    int fd = -1;
    ~FdGuard() {
        if (fd >= 0) ::close(fd);
    }
    int release() { return std::exchange(fd, -1); }
};

} // namespace

FileResult write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
    const std::filesystem::path target(path);
    std::string directory = target.parent_path().string();
    if (directory.empty()) directory = ".";
    const std::string temp = path + ".tmp." + std::to_string(::getpid());

    FdGuard file{::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)};
    if (file.fd < 0) return {false, errno_text("open", temp)};
    const char* data = content.data();
    std::size_t left = content.size();
    while (left > 0) {
        ssize_t written = ::write(file.fd, data, left);
        if (written < 0) {
            if (errno == EINTR) continue;
            FileResult failure{false, errno_text("write", temp)};
            ::unlink(temp.c_str());
            return failure;
        }
        data += written;
        left -= static_cast<std::size_t>(written);
    }
    if (::fchmod(file.fd, mode) != 0 || ::fsync(file.fd) != 0) {
        FileResult failure{false, errno_text("fsync", temp)};
        ::unlink(temp.c_str());
        return failure;
    }
    if (::close(file.release()) != 0) {
        FileResult failure{false, errno_text("close", temp)};
        ::unlink(temp.c_str());
        return failure;
    }
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        FileResult failure{false, errno_text("rename", temp)};
        ::unlink(temp.c_str());
        return failure;
    }
    FdGuard dir{::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dir.fd < 0) return {false, errno_text("open directory", directory)};
    if (::fsync(dir.fd) != 0) return {false, errno_text("fsync directory", directory)};
    return {};
}

std::optional<std::string> read_whole_file(const std::string& path, std::string* error, bool* missing) {
    if (missing) *missing = false;
    FdGuard file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (file.fd < 0) {
        if (missing) *missing = errno == ENOENT;
        if (error) *error = errno_text("open", path);
        return std::nullopt;
    }
    std::string content;
    char buffer[16384];
    for (;;) {
        ssize_t got = ::read(file.fd, buffer, sizeof buffer);
        if (got < 0) {
            if (errno == EINTR) continue;
            if (error) *error = errno_text("read", path);
            return std::nullopt;
        }
        if (got == 0) break;
        content.append(buffer, static_cast<std::size_t>(got));
    }
    return content;
}

} // namespace releasectl
