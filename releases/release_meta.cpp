#include "releases/release_meta.hpp"

#include "releases/fs_util.hpp"
#include "releases/layout.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <unistd.h>

namespace releasectl::releases {

namespace json = boost::json;

Status write_release_meta(const fs::path& root, const ReleaseMeta& meta) {
    StorePaths paths(root);
    std::error_code ec;
    fs::create_directories(paths.meta_dir(), ec);
    if (ec)
        return Status::failure(fmt::format("cannot create {}: {}", paths.meta_dir().string(), ec.message()));
    json::object o;
    o["id"] = meta.id;
    o["created"] = format_utc(meta.created);
    o["created_unix_ns"] =
        std::chrono::duration_cast<std::chrono::nanoseconds>(meta.created.time_since_epoch()).count();
    o["source"] = meta.source;
    return write_file_atomic(paths.meta_file(meta.id), json::serialize(o) + "\n");
}

std::optional<ReleaseMeta> read_release_meta(const fs::path& root, std::string_view id) {
    if (!is_valid_release_id(id))
        return std::nullopt;
    auto text = read_file(StorePaths(root).meta_file(id));
    if (!text)
        return std::nullopt;
    boost::system::error_code ec;
    json::value parsed = json::parse(*text, ec);
    if (ec || !parsed.is_object())
        return std::nullopt;
    const json::object& o = parsed.as_object();
    const json::value* ns = o.if_contains("created_unix_ns");
    if (!ns || !ns->is_int64())
        return std::nullopt;
    ReleaseMeta meta;
    meta.id = std::string(id);
    meta.created = Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns->as_int64())));
    if (const json::value* source = o.if_contains("source"); source && source->is_string())
        meta.source = std::string(source->as_string());
    return meta;
}

void remove_release_meta(const fs::path& root, std::string_view id) {
    if (is_valid_release_id(id))
        ::unlink(StorePaths(root).meta_file(id).c_str());
}

} // namespace releasectl::releases
