// Store pointers, listing, retention, bad marks and the rollback target.
#include "releases/catalog.hpp"
#include "releases/create_release.hpp"
#include "releases/layout.hpp"
#include "releases/symlinks.hpp"
#include "tests/releases/store_test_support.hpp"

#include <doctest/doctest.h>

#include <chrono>

using namespace releasectl::releases;
using releasectl::test::names_in;
using releasectl::test::read_text;
using releasectl::test::TempDir;
using releasectl::test::write_text;

namespace {

const Clock::time_point kStart = Clock::from_time_t(1714564800); // 2024-05-01T12:00:00Z

// A store with releases r1..rN created one minute apart (r1 oldest).
struct Store {
    TempDir tmp;
    fs::path root = tmp / "store";

    explicit Store(int count) {
        for (int i = 1; i <= count; ++i) {
            const fs::path src = tmp / ("src" + std::to_string(i));
            write_text(src / "version", std::to_string(i));
            CreateOptions options;
            options.id = "r" + std::to_string(i);
            options.now = kStart + std::chrono::minutes(i);
            auto created = create_release(root, src, options);
            REQUIRE_MESSAGE(created.ok(), created.error);
        }
    }
};

ReleaseInfo info(std::string id, bool is_current = false, bool is_previous = false,
                 std::vector<std::string> slots = {}, bool bad = false) {
    ReleaseInfo r;
    r.id = std::move(id);
    r.is_current = is_current;
    r.is_previous = is_previous;
    r.slots = std::move(slots);
    if (bad)
        r.bad = BadMark{r.id, "rollout", "errors", {}};
    return r;
}

} // namespace

TEST_CASE("symlink pointers: bind_slot, current, previous") {
    Store store(2);
    CHECK_FALSE(current_release(store.root));
    REQUIRE(bind_slot(store.root, "blue", "r1").ok());
    REQUIRE(bind_slot(store.root, "green", "r2").ok());
    REQUIRE(set_current(store.root, "r1").ok());
    REQUIRE(set_previous(store.root, "r2").ok());

    CHECK(fs::read_symlink(store.root / "slots/blue") == "../releases/r1");
    CHECK(fs::read_symlink(store.root / "current") == "releases/r1");
    CHECK(read_text(store.root / "slots/green/version") == "2");
    CHECK(read_text(store.root / "current/version") == "1");
    CHECK(slot_release(store.root, "blue") == "r1");
    CHECK(current_release(store.root) == "r1");
    CHECK(previous_release(store.root) == "r2");
    CHECK(slot_bindings(store.root) == std::map<std::string, std::string>{{"blue", "r1"}, {"green", "r2"}});

    // Flipping replaces in place and leaves no temporary names behind.
    REQUIRE(set_current(store.root, "r2").ok());
    CHECK(current_release(store.root) == "r2");
    CHECK(names_in(store.root / "slots") == std::vector<std::string>{"blue", "green"});

    // Pointers only ever name existing releases.
    auto missing = set_current(store.root, "r9");
    CHECK_FALSE(missing.ok());
    CHECK(missing.error.find("r9") != std::string::npos);
    CHECK(current_release(store.root) == "r2");
    CHECK_FALSE(bind_slot(store.root, "../x", "r1").ok());
}

TEST_CASE("list_releases reports creation time, size, bindings and marks, oldest first") {
    Store store(3);
    REQUIRE(bind_slot(store.root, "blue", "r2").ok());
    REQUIRE(bind_slot(store.root, "green", "r2").ok());
    REQUIRE(set_current(store.root, "r2").ok());
    REQUIRE(set_previous(store.root, "r1").ok());
    REQUIRE(mark_bad(store.root, "r3", "rollout", "error rate 12% > 5%", kStart).ok());
    fs::create_directories(store.root / "releases/.tmp-r4-deadbeef"); // an in-progress create

    auto releases = list_releases(store.root);
    REQUIRE(releases.size() == 3);
    CHECK(releases[0].id == "r1");
    CHECK(releases[2].id == "r3");
    CHECK(releases[0].created == kStart + std::chrono::minutes(1));
    CHECK(releases[0].size_bytes == 1);
    CHECK(releases[0].is_previous);
    CHECK(releases[1].is_current);
    CHECK(releases[1].slots == std::vector<std::string>{"blue", "green"});
    REQUIRE(releases[2].bad);
    CHECK(releases[2].bad->why == "error rate 12% > 5%");
    CHECK_FALSE(releases[0].bad);
}

TEST_CASE("a release's age comes from the store's metadata, not from its directory's mtime") {
    Store store(3);
    write_text(store.root / "releases/r1/tmp/app.pid", "123"); // an app writing where it should not
    auto releases = list_releases(store.root);
    REQUIRE(releases.size() == 3);
    CHECK(releases[0].id == "r1");
    CHECK(releases[0].created == kStart + std::chrono::minutes(1));
    CHECK(releases[0].source == (store.tmp / "src1").string());
    CHECK(fs::exists(store.root / ".releasectl/releases/r1.json"));
}

TEST_CASE("select_for_removal keeps the newest N and anything a pointer names") {
    std::vector<ReleaseInfo> r{info("a"), info("b", false, true), info("c"), info("d", false, false, {"green"}),
                               info("e"), info("f", true), info("g")};
    CHECK(select_for_removal(r, 2) == std::vector<std::string>{"a", "c", "e"});
    CHECK(select_for_removal(r, 4) == std::vector<std::string>{"a", "c"});
    CHECK(select_for_removal(r, 7).empty());
    CHECK(select_for_removal(r, 100).empty());
    CHECK(select_for_removal(r, 0) == std::vector<std::string>{"a", "c", "e", "g"});
    CHECK(select_for_removal({}, 3).empty());
}

TEST_CASE("retention removes the oldest unprotected releases and their marks") {
    Store store(7);
    REQUIRE(bind_slot(store.root, "blue", "r1").ok());
    REQUIRE(set_previous(store.root, "r2").ok());
    REQUIRE(set_current(store.root, "r3").ok());
    REQUIRE(mark_bad(store.root, "r4", "operator", "broken", kStart).ok());

    auto result = retention(store.root, 2);
    CHECK(result.errors.empty());
    CHECK(result.removed == std::vector<std::string>{"r4", "r5"});
    CHECK(names_in(store.root / "releases") == std::vector<std::string>{"r1", "r2", "r3", "r6", "r7"});
    CHECK_FALSE(is_bad(store.root, "r4"));
    CHECK_FALSE(fs::exists(store.root / ".releasectl/bad/r4.json"));
    CHECK_FALSE(fs::exists(store.root / ".releasectl/releases/r4.json"));
    CHECK(fs::exists(store.root / ".releasectl/releases/r6.json"));

    // Idempotent, and interrupted trash from an earlier run is cleaned up.
    fs::create_directories(store.root / "releases/.trash-r0-12345678/deep");
    CHECK(retention(store.root, 2).removed.empty());
    CHECK(names_in(store.root / "releases") == std::vector<std::string>{"r1", "r2", "r3", "r6", "r7"});
}

TEST_CASE("bad marks record who, when and why outside the immutable release") {
    Store store(2);
    CHECK_FALSE(is_bad(store.root, "r1"));
    const auto when = kStart + std::chrono::hours(1);
    REQUIRE(mark_bad(store.root, "r2", "rollout", "p95 3.1s > 2s", when).ok());
    CHECK(is_bad(store.root, "r2"));
    auto mark = bad_mark(store.root, "r2");
    REQUIRE(mark);
    CHECK(mark->id == "r2");
    CHECK(mark->who == "rollout");
    CHECK(mark->why == "p95 3.1s > 2s");
    CHECK(mark->when == when);
    CHECK(read_text(store.root / ".releasectl/bad/r2.json").find("2024-05-01T13:00:00Z") != std::string::npos);
    CHECK(names_in(store.root / "releases/r2") == std::vector<std::string>{"version"});

    CHECK_FALSE(mark_bad(store.root, "r9", "x", "y").ok());
    CHECK_FALSE(mark_bad(store.root, "../r1", "x", "y").ok());

    REQUIRE(clear_bad(store.root, "r2").ok());
    CHECK_FALSE(is_bad(store.root, "r2"));
    CHECK(clear_bad(store.root, "r2").ok());
}

TEST_CASE("rollback target: newest release older than current that is not bad") {
    std::vector<ReleaseInfo> r{info("a"), info("b"), info("c", false, false, {}, true), info("d", true), info("e")};
    CHECK(pick_rollback_target(r, "d") == "b");
    CHECK(pick_rollback_target(r, "b") == "a");
    CHECK_FALSE(pick_rollback_target(r, "a"));
    CHECK_FALSE(pick_rollback_target(r, "zzz"));

    Store store(4);
    CHECK_FALSE(rollback_target(store.root)); // no current yet
    REQUIRE(set_current(store.root, "r4").ok());
    CHECK(rollback_target(store.root) == "r3");
    REQUIRE(mark_bad(store.root, "r3", "rollout", "errors").ok());
    CHECK(rollback_target(store.root) == "r2");
}
