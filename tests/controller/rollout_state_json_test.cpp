#include "controller/rollout_state_json.hpp"
#include "rollout_harness.hpp"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include <cstdio>
#include <filesystem>
#include <unistd.h>

using namespace releasectl;
using namespace releasectl::testing;

namespace {

void check_round_trip(const RolloutState& state) {
    const std::string text = serialize_state(state);
    StateParseResult parsed = parse_state(text);
    INFO(parsed.error);
    REQUIRE(parsed.state);
    CHECK(*parsed.state == state);
    CHECK(serialize_state(*parsed.state) == text);
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char pattern[] = "/tmp/releasectl-test-XXXXXX";
        path = ::mkdtemp(pattern);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

} // namespace

TEST_CASE("state round-trips exactly through JSON in every phase") {
    Harness h;
    check_round_trip(h.state); // fresh

    h.starting_b();
    check_round_trip(h.state);

    h.expect_applied(event::CandidateHealthy{"B"});
    h.advance(10s);
    Verdict odd = verdict(VerdictKind::fail, 3, 1, 0.1 + 0.2); // not a short decimal
    odd.error_rate = 1.0 / 3.0;
    odd.baseline_requests = 12345678901234ull;
    odd.baseline_error_rate = 0.0;
    odd.baseline_p95_seconds = 1e-7;
    odd.reasons.push_back("quotes \" and \\ and ünïcödé");
    h.expect_applied(event::Tick{odd});
    REQUIRE(h.state.phase == Phase::running);
    REQUIRE(h.state.rollout->last_verdict);
    check_round_trip(h.state);

    h.expect_applied(event::Pause{});
    check_round_trip(h.state);
    h.expect_applied(event::Resume{});
    h.expect_applied(event::Promote{true});
    REQUIRE(h.state.phase == Phase::promoted);
    check_round_trip(h.state);

    h.expect_applied(event::Rollback{});
    REQUIRE(h.state.phase == Phase::rolled_back);
    check_round_trip(h.state);
    CHECK(h.state.history.size() == 2);
}

TEST_CASE("a restarted machine from persisted JSON behaves like the original") {
    Harness h;
    h.running_b();
    h.advance(1min);
    h.expect_applied(fail_tick());
    StateParseResult parsed = parse_state(serialize_state(h.state));
    REQUIRE(parsed.state);
    Transition original = transition(h.state, fail_tick(), h.now, h.settings);
    Transition restored = transition(*parsed.state, fail_tick(), h.now, h.settings);
    CHECK(original.state == restored.state);
    CHECK(original.actions.size() == restored.actions.size());
    CHECK(restored.state.phase == Phase::rolled_back);
}

TEST_CASE("the JSON is readable and carries what status needs") {
    Harness h;
    h.running_b();
    const std::string text = serialize_state(h.state);
    CHECK(text.find("\"phase\": \"running\"") != std::string::npos);
    CHECK(text.find("\"steps\": [10,25,50,75,100]") != std::string::npos);
    CHECK(text.find("\"progress\": \"step 1/5 (10%)\"") != std::string::npos);
    CHECK(text.back() == '\n');
    boost::json::value v = boost::json::parse(text);
    CHECK(v.at("weights").at("green").as_int64() == 10);
    CHECK(v.at("rollout").at("step_started_at").as_int64() == h.now.time_since_epoch().count());
}

TEST_CASE("malformed state is an error value naming the field") {
    CHECK(parse_state("{").error.rfind("not valid JSON", 0) == 0);
    CHECK(parse_state("[]").error == ": expected an object");
    CHECK(parse_state(R"({"version": 2})").error == "version: unsupported state format version 2");
    CHECK(parse_state(R"({"phase": "dancing"})").error == "phase: unknown value \"dancing\"");
    CHECK(parse_state(R"({"phase": "running"})").error == "rollout: phase running needs a rollout");
    CHECK(parse_state(R"({"weights": {"blue": -1}})").error == "weights.blue: expected an unsigned integer");
    CHECK(parse_state(R"({"phase": "running", "rollout": {"release": "B", "plan": {"steps": [10, 100]}, "step": 5}})")
              .error == "rollout.step: out of range for the plan's steps");
    CHECK(parse_state(R"({"history": [{"release": "B", "step_records": [{"requests": "many"}]}]})").error ==
          "history[0].step_records[0].requests: expected an unsigned integer");
    CHECK(parse_state(R"({"history": [{"kind": "canary"}]})").error == "history[0].release: missing");
    // Unknown extra fields are tolerated (a newer daemon may add some).
    CHECK(parse_state(R"({"phase": "idle", "future_field": 1})").state);
}

TEST_CASE("atomic write: replaces content, leaves no temp file, reads back") {
    TempDir dir;
    const std::string path = (dir.path / "state.json").string();
    std::string error;
    bool missing = false;
    CHECK_FALSE(read_whole_file(path, &error, &missing));
    CHECK(missing);

    REQUIRE(write_file_atomically(path, "first"));
    REQUIRE(write_file_atomically(path, "second, longer"));
    CHECK(read_whole_file(path, &error) == std::string("second, longer"));
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path), std::filesystem::directory_iterator{}) == 1);

    FileResult denied = write_file_atomically((dir.path / "no-such-dir" / "x").string(), "x");
    CHECK_FALSE(denied.ok);
    CHECK(denied.error.find("no-such-dir") != std::string::npos);
}

TEST_CASE("state file helpers: missing file is not an error; saved state loads back") {
    TempDir dir;
    const std::string path = (dir.path / "state.json").string();
    bool missing = false;
    StateParseResult none = load_state_file(path, &missing);
    CHECK(missing);
    CHECK_FALSE(none.state);
    CHECK(none.error.empty());

    Harness h;
    h.promoted_b();
    REQUIRE(save_state_file(path, h.state));
    StateParseResult loaded = load_state_file(path, &missing);
    CHECK_FALSE(missing);
    REQUIRE(loaded.state);
    CHECK(*loaded.state == h.state);

    REQUIRE(write_file_atomically(path, "{\"phase\": 3}"));
    StateParseResult broken = load_state_file(path, &missing);
    CHECK_FALSE(broken.state);
    CHECK(broken.error == path + ": phase: expected a string");
}
