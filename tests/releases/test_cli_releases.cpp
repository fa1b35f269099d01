// `releasectl release create` and `releasectl releases [--json]` glue.
#include "controller/cli_releases.hpp"
#include "controller/config.hpp"
#include "releases/bad_marks.hpp"
#include "releases/symlinks.hpp"
#include "tests/releases/store_test_support.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

using releasectl::test::read_text;
using releasectl::test::TempDir;
using releasectl::test::write_tar_gz;
using releasectl::test::write_text;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// Runs `body` with stdout redirected into a file and returns what it printed.
template <class F>
std::string capture_stdout(const fs::path& file, F&& body, int* rc) {
    std::fflush(stdout);
    const int saved = ::dup(1);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::close(fd);
    *rc = body();
    std::fflush(stdout);
    ::dup2(saved, 1);
    ::close(saved);
    return read_text(file);
}

} // namespace

TEST_CASE("release create: exit codes 0 / 1 / 2 and retention after a create") {
    TempDir tmp;
    releasectl::Config config;
    config.root = (tmp / "store").string();
    config.releases.keep = 2;
    write_text(tmp / "app/app.py", "print('hi')\n");
    int rc = -1;

    std::string out = capture_stdout(tmp / "out.txt", [&] { return releasectl::cmd_release_create(config, (tmp / "app").string(), "v1"); }, &rc);
    CHECK(rc == 0);
    CHECK(out.find("created release v1") != std::string::npos);

    CHECK(releasectl::cmd_release_create(config, (tmp / "app").string(), std::string("v1")) == 1); // clash
    CHECK(releasectl::cmd_release_create(config, (tmp / "app").string(), std::string("../x")) == 2);
    CHECK(releasectl::cmd_release_create(config, (tmp / "missing").string(), std::string("v9")) == 2);
    write_tar_gz(tmp / "evil.tar.gz", {{"../x", releasectl::test::ArchiveEntry::Type::file, "x"}});
    CHECK(releasectl::cmd_release_create(config, (tmp / "evil.tar.gz").string(), std::string("v9")) == 1);

    REQUIRE(releasectl::releases::set_current(config.root, "v1").ok());
    CHECK(releasectl::cmd_release_create(config, (tmp / "app").string(), std::string("v2")) == 0);
    out = capture_stdout(tmp / "out.txt", [&] { return releasectl::cmd_release_create(config, (tmp / "app").string(), "v3"); }, &rc);
    CHECK(rc == 0);
    CHECK(out.find("removed") == std::string::npos); // v1 is current, v2 and v3 are the newest two
    out = capture_stdout(tmp / "out.txt", [&] { return releasectl::cmd_release_create(config, (tmp / "app").string(), "v4"); }, &rc);
    CHECK(rc == 0);
    CHECK(out.find("removed old release v2 (keep = 2)") != std::string::npos);
    CHECK(fs::is_directory(tmp / "store/releases/v1"));
    CHECK_FALSE(fs::exists(tmp / "store/releases/v2"));
    CHECK(fs::is_directory(tmp / "store/releases/v3"));
    CHECK(fs::is_directory(tmp / "store/releases/v4"));
}

TEST_CASE("releases --json lists ids, bindings and marks; the table has one row per release") {
    TempDir tmp;
    releasectl::Config config;
    config.root = (tmp / "store").string();
    write_text(tmp / "app/app.py", "print('hi')\n");
    int rc = -1;
    for (auto id : {"a", "b"})
        capture_stdout(tmp / "out.txt", [&] { return releasectl::cmd_release_create(config, (tmp / "app").string(), std::string(id)); }, &rc);
    REQUIRE(releasectl::releases::bind_slot(config.root, "blue", "a").ok());
    REQUIRE(releasectl::releases::set_current(config.root, "a").ok());
    REQUIRE(releasectl::releases::mark_bad(config.root, "b", "rollout", "p95 too high").ok());

    std::string out = capture_stdout(tmp / "out.txt", [&] { return releasectl::cmd_releases(config, true); }, &rc);
    CHECK(rc == 0);
    json::value doc = json::parse(out);
    CHECK(doc.at("current").as_string() == "a");
    CHECK(doc.at("previous").is_null());
    const auto& list = doc.at("releases").as_array();
    REQUIRE(list.size() == 2);
    std::map<std::string, json::object> by_id;
    for (const auto& r : list)
        by_id[std::string(r.at("id").as_string())] = r.as_object();
    CHECK(by_id["a"].at("current").as_bool());
    CHECK(by_id["a"].at("slots").as_array().size() == 1);
    CHECK(by_id["a"].at("bad").is_null());
    CHECK(by_id["a"].at("size_bytes").to_number<std::uint64_t>() == 12);
    CHECK(by_id["b"].at("bad").at("why").as_string() == "p95 too high");

    out = capture_stdout(tmp / "out.txt", [&] { return releasectl::cmd_releases(config, false); }, &rc);
    CHECK(rc == 0);
    CHECK(out.find("ID") == 0);
    CHECK(out.find("blue") != std::string::npos);
    CHECK(out.find("current") != std::string::npos);
    CHECK(out.find("bad (rollout") != std::string::npos);
}
