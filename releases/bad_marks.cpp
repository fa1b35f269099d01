#include "releases/bad_marks.hpp"

#include "releases/fs_util.hpp"
#include "releases/layout.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <sys/stat.h>
#include <unistd.h>

namespace releasectl::releases {

namespace json = boost::json;

Status mark_bad(const fs::path& root, std::string_view id, std::string_view who, std::string_view why,
                Clock::time_point now) {
    StorePaths paths(root);
    std::string invalid;
    if (!is_valid_release_id(id, &invalid))
        return Status::failure(invalid);
    struct stat st {};
    if (::stat(paths.release_dir(id).c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return Status::failure(fmt::format("release {} does not exist", id));
    std::error_code ec;
    fs::create_directories(paths.bad_dir(), ec);
    if (ec)
        return Status::failure(fmt::format("cannot create {}: {}", paths.bad_dir().string(), ec.message()));
    json::object mark;
    mark["id"] = id;
    mark["who"] = who;
    mark["when"] = format_utc(now);
    mark["why"] = why;
    return write_file_atomic(paths.bad_mark_file(id), json::serialize(mark) + "\n");
}

Status clear_bad(const fs::path& root, std::string_view id) {
    StorePaths paths(root);
    if (!is_valid_release_id(id))
        return Status::success();
    if (::unlink(paths.bad_mark_file(id).c_str()) != 0 && errno != ENOENT)
        return Status::failure(
            fmt::format("cannot remove {}: {}", paths.bad_mark_file(id).string(), errno_text(errno)));
    return fsync_directory(paths.bad_dir());
}

std::optional<BadMark> bad_mark(const fs::path& root, std::string_view id) {
    if (!is_valid_release_id(id))
        return std::nullopt;
    const fs::path file = StorePaths(root).bad_mark_file(id);
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0)
        return std::nullopt;
    BadMark mark;
    mark.id = std::string(id);
    auto text = read_file(file);
    boost::system::error_code ec;
    json::value parsed = text ? json::parse(*text, ec) : json::value{};
    if (!text || ec || !parsed.is_object()) {
        // Unreadable mark: still bad (failing safe for rollback), say why.
        mark.who = "unknown";
        mark.why = fmt::format("unreadable mark file {}", file.string());
        return mark;
    }
    const json::object& object = parsed.as_object();
    auto string_field = [&](const char* key) -> std::string {
        if (auto* v = object.if_contains(key); v && v->is_string())
            return std::string(v->as_string());
        return {};
    };
    mark.who = string_field("who");
    mark.why = string_field("why");
    if (!parse_utc(string_field("when"), &mark.when))
        mark.when = Clock::from_time_t(st.st_mtime);
    return mark;
}

bool is_bad(const fs::path& root, std::string_view id) {
    return bad_mark(root, id).has_value();
}

} // namespace releasectl::releases
