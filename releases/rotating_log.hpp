#pragma once
// A size-capped, rotated log file for an app's stdout/stderr:
// <slot>.log, then <slot>.log.1 .. <slot>.log.<keep> (oldest dropped).
#include "releases/result.hpp"

#include <cstdint>
#include <filesystem>
#include <string_view>

namespace releasectl::releases {

namespace fs = std::filesystem;

class RotatingLog {
public:
    RotatingLog(fs::path path, std::uint64_t max_bytes, unsigned keep);
    ~RotatingLog();
    RotatingLog(const RotatingLog&) = delete;
    RotatingLog& operator=(const RotatingLog&) = delete;

    // Appends, rotating first when the file would grow past max_bytes. A
    // chunk larger than max_bytes still goes out whole (into a fresh file).
    Status write(std::string_view data);
    void set_limits(std::uint64_t max_bytes, unsigned keep);
    const fs::path& path() const { return path_; }

private:
    Status open();
    Status rotate();

    fs::path path_;
    std::uint64_t max_bytes_;
    unsigned keep_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
};

} // namespace releasectl::releases
