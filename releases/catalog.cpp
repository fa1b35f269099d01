#include "releases/catalog.hpp"

#include "releases/fs_util.hpp"
#include "releases/layout.hpp"
#include "releases/release_meta.hpp"
#include "releases/symlinks.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace releasectl::releases {

namespace {

Clock::time_point mtime_of(const struct stat& st) {
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
        std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

// Bytes of regular files, each inode once, symlinks not followed.
std::uint64_t tree_size(const fs::path& dir) {
    std::uint64_t total = 0;
    std::set<std::pair<dev_t, ino_t>> seen;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        struct stat st {};
        if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            seen.insert({st.st_dev, st.st_ino}).second)
            total += static_cast<std::uint64_t>(st.st_size);
    }
    return total;
}

bool older(const ReleaseInfo& a, const ReleaseInfo& b) {
    if (a.created != b.created)
        return a.created < b.created;
    return a.id < b.id;
}

} // namespace

std::vector<ReleaseInfo> list_releases(const fs::path& root, bool with_sizes) {
    StorePaths paths(root);
    const auto bindings = slot_bindings(root);
    const auto current = current_release(root);
    const auto previous = previous_release(root);
    std::vector<ReleaseInfo> releases;
    std::error_code ec;
    for (auto it = fs::directory_iterator(paths.releases_dir(), ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        ReleaseInfo info;
        info.id = it->path().filename().string();
        if (!is_valid_release_id(info.id)) // .tmp-*, .trash-*, strays
            continue;
        struct stat st {};
        if (::lstat(it->path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        info.path = it->path();
        if (auto meta = read_release_meta(root, info.id)) {
            info.created = meta->created;
            info.source = meta->source;
        } else {
            info.created = mtime_of(st);
        }
        if (with_sizes)
            info.size_bytes = tree_size(info.path);
        for (const auto& [slot, id] : bindings)
            if (id == info.id)
                info.slots.push_back(slot);
        info.is_current = current && *current == info.id;
        info.is_previous = previous && *previous == info.id;
        info.bad = bad_mark(root, info.id);
        releases.push_back(std::move(info));
    }
    std::sort(releases.begin(), releases.end(), older);
    return releases;
}

std::vector<std::string> select_for_removal(const std::vector<ReleaseInfo>& oldest_first, unsigned keep) {
    std::vector<std::string> doomed;
    if (oldest_first.size() <= keep)
        return doomed;
    const std::size_t beyond_keep = oldest_first.size() - keep;
    for (std::size_t i = 0; i < beyond_keep; ++i)
        if (!oldest_first[i].is_protected())
            doomed.push_back(oldest_first[i].id);
    return doomed;
}

RetentionResult retention(const fs::path& root, unsigned keep) {
    StorePaths paths(root);
    RetentionResult result;
    for (const std::string& id : select_for_removal(list_releases(root, false), keep)) {
        // Re-check right before removing: a slot may have been bound meanwhile.
        const auto bindings = slot_bindings(root);
        const bool bound = std::any_of(bindings.begin(), bindings.end(), [&](auto& b) { return b.second == id; });
        if (bound || current_release(root) == id || previous_release(root) == id)
            continue;
        const fs::path trash = paths.releases_dir() / fmt::format(".trash-{}-{}", id, random_suffix());
        if (::rename(paths.release_dir(id).c_str(), trash.c_str()) != 0) {
            result.errors.push_back(fmt::format("cannot remove release {}: {}", id, errno_text(errno)));
            continue;
        }
        result.removed.push_back(id);
        if (auto status = remove_tree(trash); !status)
            result.errors.push_back(status.error);
        (void)clear_bad(root, id);
        remove_release_meta(root, id);
    }
    (void)fsync_directory(paths.releases_dir());
    // Trash left by an interrupted earlier run.
    std::error_code ec;
    for (auto it = fs::directory_iterator(paths.releases_dir(), ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        if (it->path().filename().string().rfind(".trash-", 0) == 0)
            (void)remove_tree(it->path());
    }
    return result;
}

std::optional<std::string> pick_rollback_target(const std::vector<ReleaseInfo>& oldest_first,
                                                std::string_view current_id) {
    auto current = std::find_if(oldest_first.begin(), oldest_first.end(),
                                [&](const ReleaseInfo& r) { return r.id == current_id; });
    if (current == oldest_first.end())
        return std::nullopt;
    for (auto it = std::make_reverse_iterator(current); it != oldest_first.rend(); ++it)
        if (!it->bad)
            return it->id;
    return std::nullopt;
}

std::optional<std::string> rollback_target(const fs::path& root) {
    auto current = current_release(root);
    if (!current)
        return std::nullopt;
    return pick_rollback_target(list_releases(root, false), *current);
}

} // namespace releasectl::releases
