#include "releases/create_release.hpp"

#include "releases/copy_tree.hpp"
#include "releases/fs_util.hpp"
#include "releases/layout.hpp"
#include "releases/release_meta.hpp"
#include "releases/shared_links.hpp"
#include "releases/unpack_archive.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace releasectl::releases {

namespace {

// Removes the temporary build directory unless the build was committed.
class BuildDirectory {
public:
    explicit BuildDirectory(fs::path path) : path_(std::move(path)) {}
    BuildDirectory(const BuildDirectory&) = delete;
    BuildDirectory& operator=(const BuildDirectory&) = delete;
    ~BuildDirectory() {
        if (!committed_)
            (void)remove_tree(path_);
    }
    const fs::path& path() const { return path_; }
    void commit() { committed_ = true; }

private:
    fs::path path_;
    bool committed_ = false;
};

// The source tree is never inside the store's releases/ (that would copy forever).
bool contains(const fs::path& outer, const fs::path& inner) {
    std::error_code ec;
    const fs::path a = fs::weakly_canonical(outer, ec);
    const fs::path b = fs::weakly_canonical(inner, ec);
    auto [end_a, end_b] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
    return end_a == a.end();
}

// Durability before visibility: flush the new tree's data to disk.
void sync_filesystem_of(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::syncfs(fd);
        ::close(fd);
    }
}

void set_mtime(const fs::path& path, Clock::time_point when) {
    const auto since_epoch = when.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds);
    const struct timespec times[2] = {{seconds.count(), static_cast<long>(nanos.count())},
                                      {seconds.count(), static_cast<long>(nanos.count())}};
    ::utimensat(AT_FDCWD, path.c_str(), times, 0);
}

} // namespace

Result<CreatedRelease> create_release(const fs::path& root, const fs::path& source, const CreateOptions& options) {
    using R = Result<CreatedRelease>;
    if (auto status = ensure_layout(root); !status)
        return R::failure(status);
    StorePaths paths(root);

    const std::string id = options.id ? *options.id : release_id_for(options.now);
    std::string why;
    if (!is_valid_release_id(id, &why))
        return R::failure(why);
    const fs::path final_dir = paths.release_dir(id);
    struct stat st {};
    if (::lstat(final_dir.c_str(), &st) == 0)
        return R::failure(fmt::format("release {} already exists; releases are never overwritten", id));

    if (::stat(source.c_str(), &st) != 0)
        return R::failure(fmt::format("cannot read {}: {}", source.string(), errno_text(errno)));
    const bool from_directory = S_ISDIR(st.st_mode);
    if (!from_directory && !S_ISREG(st.st_mode))
        return R::failure(fmt::format("{} is neither a directory nor an archive file", source.string()));
    if (from_directory && contains(source, paths.releases_dir()))
        return R::failure(fmt::format("{} contains the release store itself", source.string()));

    BuildDirectory build(paths.releases_dir() / fmt::format(".tmp-{}-{}", id, random_suffix()));
    if (from_directory) {
        if (auto status = copy_tree(source, build.path()); !status)
            return R::failure(status);
    } else {
        if (::mkdir(build.path().c_str(), 0755) != 0)
            return R::failure(fmt::format("cannot create {}: {}", build.path().string(), errno_text(errno)));
        if (auto status = unpack_archive(source, build.path()); !status)
            return R::failure(status);
    }
    if (auto status = link_shared(root, build.path(), options.shared); !status)
        return R::failure(status);
    set_mtime(build.path(), options.now); // the creation time when the metadata file is missing
    sync_filesystem_of(build.path());

    if (auto status = rename_no_replace(build.path(), final_dir); !status) {
        if (::lstat(final_dir.c_str(), &st) == 0) // another create won the race for this id
            return R::failure(fmt::format("release {} already exists; releases are never overwritten", id));
        return R::failure(status);
    }
    build.commit();
    if (auto status = fsync_directory(paths.releases_dir()); !status)
        return R::failure(status);
    std::error_code ec;
    const fs::path absolute_source = fs::absolute(source, ec);
    // After the rename, so that a losing racer for the same id cannot overwrite it.
    if (auto status = write_release_meta(root, {id, options.now, ec ? source.string() : absolute_source.string()});
        !status)
        return R::failure(fmt::format("release {} was created but its metadata was not: {}", id, status.error));
    return R::success(CreatedRelease{id, final_dir});
}

Result<CreatedRelease> create_release(const fs::path& root, const fs::path& source, std::optional<std::string> id,
                                      const std::vector<std::string>& shared) {
    CreateOptions options;
    options.id = std::move(id);
    options.shared = shared;
    return create_release(root, source, options);
}

} // namespace releasectl::releases
