#include "controller/cli_releases.hpp"

#include "controller/config.hpp"
#include "releases/catalog.hpp"
#include "releases/create_release.hpp"
#include "releases/layout.hpp"
#include "releases/release_id.hpp"
#include "releases/symlinks.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/stat.h>

namespace releasectl {

namespace json = boost::json;
namespace rel = releases;

namespace {

std::string human_size(std::uint64_t bytes) {
    static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024 && unit < 4) {
        value /= 1024;
        ++unit;
    }
    return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

std::string human_time(rel::Clock::time_point when) {
    std::string iso = rel::format_utc(when); // 2024-05-01T12:00:00Z
    std::replace(iso.begin(), iso.end(), 'T', ' ');
    if (!iso.empty() && iso.back() == 'Z')
        iso.pop_back();
    return iso;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& part : parts) {
        if (!out.empty())
            out += separator;
        out += part;
    }
    return out;
}

json::value release_json(const rel::ReleaseInfo& r) {
    json::object o;
    o["id"] = r.id;
    o["path"] = r.path.string();
    o["created"] = rel::format_utc(r.created);
    o["created_unix"] = std::chrono::duration_cast<std::chrono::seconds>(r.created.time_since_epoch()).count();
    o["size_bytes"] = r.size_bytes;
    o["source"] = r.source;
    json::array slots;
    for (const auto& s : r.slots)
        slots.emplace_back(s);
    o["slots"] = std::move(slots);
    o["current"] = r.is_current;
    o["previous"] = r.is_previous;
    if (r.bad) {
        json::object bad;
        bad["who"] = r.bad->who;
        bad["when"] = rel::format_utc(r.bad->when);
        bad["why"] = r.bad->why;
        o["bad"] = std::move(bad);
    } else {
        o["bad"] = nullptr;
    }
    return o;
}

} // namespace

int cmd_release_create(const Config& config, std::string path, std::optional<std::string> id) {
    std::string why;
    if (id && !rel::is_valid_release_id(*id, &why)) {
        fmt::print(stderr, "releasectl: --id: {}\n", why);
        return 2;
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        fmt::print(stderr, "releasectl: cannot read {}: {}\n", path, std::strerror(errno));
        return 2;
    }
    auto created = rel::create_release(config.root, path, id, config.releases.shared);
    if (!created) {
        fmt::print(stderr, "releasectl: release create failed: {}\n", created.error);
        return 1;
    }
    fmt::print("created release {} at {}\n", created->id, created->path.string());
    // Keep at least the release just made, whatever `keep` says.
    auto cleaned = rel::retention(config.root, std::max(1u, config.releases.keep));
    for (const auto& removed : cleaned.removed)
        fmt::print("removed old release {} (keep = {})\n", removed, config.releases.keep);
    for (const auto& error : cleaned.errors)
        fmt::print(stderr, "releasectl: warning: {}\n", error);
    return 0;
}

int cmd_releases(const Config& config, bool as_json) {
    auto releases = rel::list_releases(config.root);
    std::reverse(releases.begin(), releases.end()); // newest first
    const auto current = rel::current_release(config.root);
    const auto previous = rel::previous_release(config.root);

    if (as_json) {
        json::object out;
        out["root"] = config.root;
        out["current"] = current ? json::value(*current) : json::value(nullptr);
        out["previous"] = previous ? json::value(*previous) : json::value(nullptr);
        json::array list;
        for (const auto& r : releases)
            list.push_back(release_json(r));
        out["releases"] = std::move(list);
        fmt::print("{}\n", json::serialize(out));
        return 0;
    }

    if (releases.empty()) {
        fmt::print("no releases in {}\n", rel::StorePaths(config.root).releases_dir().string());
        return 0;
    }
    std::size_t id_width = 2;
    for (const auto& r : releases)
        id_width = std::max(id_width, r.id.size());
    fmt::print("{:<{}}  {:<19}  {:>10}  {:<12}  {}\n", "ID", id_width, "CREATED (UTC)", "SIZE", "SLOTS", "STATUS");
    for (const auto& r : releases) {
        std::vector<std::string> flags;
        if (r.is_current)
            flags.emplace_back("current");
        if (r.is_previous)
            flags.emplace_back("previous");
        if (r.bad)
            flags.push_back(fmt::format("bad ({} at {}: {})", r.bad->who, human_time(r.bad->when), r.bad->why));
        fmt::print("{:<{}}  {:<19}  {:>10}  {:<12}  {}\n", r.id, id_width, human_time(r.created),
                   human_size(r.size_bytes), r.slots.empty() ? "-" : join(r.slots, ","), join(flags, ", "));
    }
    return 0;
}

} // namespace releasectl
