#include "releases/rotating_log.hpp"

#include "releases/fs_util.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace releasectl::releases {

RotatingLog::RotatingLog(fs::path path, std::uint64_t max_bytes, unsigned keep)
    : path_(std::move(path)), max_bytes_(max_bytes), keep_(keep) {}

RotatingLog::~RotatingLog() {
    if (fd_ >= 0)
        ::close(fd_);
}

void RotatingLog::set_limits(std::uint64_t max_bytes, unsigned keep) {
    max_bytes_ = max_bytes;
    keep_ = keep;
}

Status RotatingLog::open() {
    if (fd_ >= 0)
        return Status::success();
    std::error_code ec;
    fs::create_directories(path_.parent_path(), ec);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd_ < 0)
        return Status::failure(fmt::format("cannot open log {}: {}", path_.string(), errno_text(errno)));
    struct stat st {};
    size_ = ::fstat(fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    return Status::success();
}

Status RotatingLog::rotate() {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    auto numbered = [&](unsigned n) { return fs::path(path_.string() + "." + std::to_string(n)); };
    if (keep_ == 0) {
        ::unlink(path_.c_str());
    } else {
        ::unlink(numbered(keep_).c_str());
        for (unsigned n = keep_; n > 1; --n)
            ::rename(numbered(n - 1).c_str(), numbered(n).c_str());
        ::rename(path_.c_str(), numbered(1).c_str());
    }
    return open();
}

Status RotatingLog::write(std::string_view data) {
    if (auto status = open(); !status)
        return status;
    if (size_ > 0 && max_bytes_ > 0 && size_ + data.size() > max_bytes_)
        if (auto status = rotate(); !status)
            return status;
    while (!data.empty()) {
        ssize_t n = ::write(fd_, data.data(), data.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return Status::failure(fmt::format("cannot write log {}: {}", path_.string(), errno_text(errno)));
        size_ += static_cast<std::uint64_t>(n);
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return Status::success();
}

} // namespace releasectl::releases
