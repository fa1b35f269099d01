#pragma once
// Helpers for release store tests: a self-deleting temporary directory and a
// tar.gz writer that can produce hostile archives on purpose.
#include <filesystem>
#include <string>
#include <vector>

namespace releasectl::test {

namespace fs = std::filesystem;

class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& name) const { return path_ / name; }

private:
    fs::path path_;
};

struct ArchiveEntry {
    enum class Type { file, directory, symlink, hardlink, fifo, char_device };
    std::string path;
    Type type = Type::file;
    std::string data; // file content, or link target
    int mode = 0644;
};

// Writes a gzip-compressed pax tar exactly as described (no sanitising).
void write_tar_gz(const fs::path& file, const std::vector<ArchiveEntry>& entries);

void write_text(const fs::path& file, const std::string& text);
std::string read_text(const fs::path& file);
// Names in a directory (not recursive), sorted.
std::vector<std::string> names_in(const fs::path& dir);

} // namespace releasectl::test
