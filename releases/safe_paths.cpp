#include "releases/safe_paths.hpp"

#include <fmt/format.h>

#include <deque>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace releasectl::releases {

std::optional<fs::path> clean_relative_path(std::string_view raw, std::string* why) {
    auto fail = [&](std::string message) -> std::optional<fs::path> {
        if (why)
            *why = std::move(message);
        return std::nullopt;
    };
    if (raw.empty())
        return fail("empty path");
    if (raw.find('\0') != std::string_view::npos)
        return fail("path contains a NUL byte");
    if (raw.front() == '/')
        return fail(fmt::format("absolute path '{}'", raw));
    fs::path clean;
    for (const auto& part : fs::path(std::string(raw))) {
        const std::string name = part.string();
        if (name.empty() || name == ".")
            continue;
        if (name == "..")
            return fail(fmt::format("path '{}' contains '..'", raw));
        clean /= part;
    }
    return clean;
}

bool symlink_target_stays_inside(const fs::path& link_rel, const fs::path& target) {
    if (target.empty() || target.is_absolute())
        return false;
    std::vector<std::string> stack;
    for (const auto& part : link_rel.parent_path()) {
        const std::string name = part.string();
        if (name.empty() || name == ".")
            continue;
        if (name == "..")
            return false;
        stack.push_back(name);
    }
    for (const auto& part : target) {
        const std::string name = part.string();
        if (name.empty() || name == ".")
            continue;
        if (name == "..") {
            if (stack.empty())
                return false;
            stack.pop_back();
        } else {
            stack.push_back(name);
        }
    }
    return true;
}

namespace {

fs::path join(const fs::path& root, const std::vector<std::string>& parts) {
    fs::path path = root;
    for (const auto& part : parts)
        path /= part;
    return path;
}

std::deque<std::string> components(const fs::path& path) {
    std::deque<std::string> parts;
    for (const auto& part : path) {
        std::string name = part.string();
        if (!name.empty() && name != ".")
            parts.push_back(std::move(name));
    }
    return parts;
}

// Resolves the symlink at tree_root/link_rel the way the kernel would, but
// refusing to step above tree_root. Returns false on escape or a link loop.
bool resolves_inside(const fs::path& tree_root, const fs::path& link_rel) {
    std::vector<std::string> stack;
    for (const auto& part : link_rel)
        stack.push_back(part.string());
    std::deque<std::string> pending{stack.back()};
    stack.pop_back();
    int links_left = 40; // like the kernel's MAXSYMLINKS
    while (!pending.empty()) {
        std::string name = std::move(pending.front());
        pending.pop_front();
        if (name == "..") {
            if (stack.empty())
                return false;
            stack.pop_back();
            continue;
        }
        const fs::path candidate = join(tree_root, stack) / name;
        struct stat st {};
        if (::lstat(candidate.c_str(), &st) != 0) { // dangling: the rest is judged lexically
            stack.push_back(name);
            continue;
        }
        if (!S_ISLNK(st.st_mode)) {
            stack.push_back(name);
            continue;
        }
        if (--links_left < 0)
            return false;
        char buffer[4096];
        ssize_t n = ::readlink(candidate.c_str(), buffer, sizeof buffer);
        if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buffer)
            return false;
        fs::path target(std::string(buffer, static_cast<std::size_t>(n)));
        if (target.is_absolute())
            return false;
        auto parts = components(target);
        pending.insert(pending.begin(), parts.begin(), parts.end());
    }
    return true;
}

} // namespace

Status check_tree_symlinks(const fs::path& tree_root) {
    std::error_code ec;
    auto it = fs::recursive_directory_iterator(tree_root, ec);
    if (ec)
        return Status::failure(fmt::format("cannot read {}: {}", tree_root.string(), ec.message()));
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec)
            return Status::failure(fmt::format("cannot read {}: {}", tree_root.string(), ec.message()));
        std::error_code type_ec;
        if (!it->is_symlink(type_ec))
            continue;
        const fs::path rel = it->path().lexically_relative(tree_root);
        if (!resolves_inside(tree_root, rel)) {
            auto target = fs::read_symlink(it->path(), type_ec);
            return Status::failure(fmt::format("symlink '{}' -> '{}' points outside the release", rel.string(),
                                               target.string()));
        }
    }
    return Status::success();
}

} // namespace releasectl::releases
