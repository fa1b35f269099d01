#include "controller/rollout_machine.hpp"
#include "rollout_harness.hpp"

#include <doctest/doctest.h>

using namespace releasectl;
using namespace releasectl::testing;

namespace {
using Names = std::vector<std::string>;
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
std::map<std::string, unsigned> w(unsigned blue, unsigned green) { return {{"blue", blue}, {"green", green}}; }
} // namespace

// ---------------------------------------------------------------- first deploy

TEST_CASE("first deploy on an empty root: health-checked, then live at 100 % directly") {
    Harness h;
    h.expect_applied(event::DeployRequested{"A"});
    CHECK(h.state.phase == Phase::starting_candidate);
    CHECK(h.names() == Names{"PersistState", "StartSlot", "Notify", "Log"});
    auto start = h.only<action::StartSlot>();
    CHECK(start.slot == "blue"); // the slot [weights] favours
    CHECK(start.release == "A");
    CHECK(start.report_health);
    CHECK(h.state.rollout->kind == RolloutKind::initial);
    CHECK(contains(h.last.message, "first release A on blue"));

    h.expect_applied(event::CandidateHealthy{"A"});
    CHECK(h.names() == Names{"PublishWeights", "PersistState", "SetCurrent", "RecordHistory", "Notify", "Log"});
    CHECK(h.only<action::PublishWeights>().weights == w(100, 0));
    CHECK(h.only<action::PublishWeights>().live == "blue");
    CHECK(h.only<action::SetCurrent>().release == "A");
    CHECK(h.state.phase == Phase::idle); // nothing old to keep
    CHECK(h.state.live_slot == "blue");
    CHECK(h.state.current_release == "A");
    CHECK(h.state.previous_release.empty());
    CHECK(h.state.slot_release.at("blue") == "A");
    REQUIRE(h.state.history.size() == 1);
    CHECK(h.state.history[0].outcome == Outcome::promoted);
    CHECK(h.notified() == Names{"promoted"});
}

TEST_CASE("first deploy that never becomes healthy: marked bad, nothing live") {
    Harness h;
    h.expect_applied(event::DeployRequested{"A"});
    h.expect_applied(event::CandidateUnhealthy{"A", "exited with status 1"});
    CHECK(h.names() == Names{"PersistState", "MarkBad", "StopSlot", "RecordHistory", "Notify", "Log"});
    CHECK(h.state.phase == Phase::rolled_back);
    CHECK(h.state.live_slot.empty());
    CHECK(h.state.current_release.empty());
    CHECK(contains(h.last.message, "exited with status 1"));
    // A new first deploy is allowed.
    h.expect_applied(event::DeployRequested{"A2"});
    CHECK(h.state.rollout->kind == RolloutKind::initial);
}

// ---------------------------------------------------------------- canary steps

TEST_CASE("a later deploy goes to the idle slot and starts at the first step") {
    Harness h;
    h.starting_b();
    CHECK(h.only<action::StartSlot>().slot == "green");
    CHECK(h.state.rollout->live_slot == "blue");
    CHECK(h.state.rollout->live_release == "A");
    CHECK(h.state.rollout->kind == RolloutKind::canary);
    CHECK(contains(h.last.message, "deploying B to green: canary 10→25→50→75→100, 5m per step"));
    CHECK(h.notified() == Names{"started"});
    CHECK(h.state.weights == w(100, 0)); // no traffic before health checks pass

    h.expect_applied(event::CandidateHealthy{"B"});
    CHECK(h.names() == Names{"PublishWeights", "PersistState", "Notify", "Log"});
    auto publish = h.only<action::PublishWeights>();
    CHECK(publish.weights == w(90, 10));
    CHECK(publish.live == "blue");
    CHECK(publish.candidate == "green");
    CHECK(h.state.rollout->step == 0);
    CHECK(h.state.rollout->progress() == "step 1/5 (10%)");
    CHECK(h.state.rollout->step_started_at == h.now);
    CHECK(h.notified() == Names{"step"});
}

TEST_CASE("a step advances only when its duration passed, its last check passed and it saw min_requests") {
    Harness h;
    h.running_b();

    SUBCASE("passing checks before step_duration keep the step") {
        h.advance(4min);
        h.expect_applied(pass_tick());
        CHECK(h.state.rollout->step == 0);
        CHECK(h.names() == Names{"PersistState"});
        h.advance(59s);
        h.expect_applied(pass_tick());
        CHECK(h.state.rollout->step == 0);
        h.advance(1s); // exactly step_duration
        h.expect_applied(pass_tick());
        CHECK(h.state.rollout->step == 1);
        CHECK(h.only<action::PublishWeights>().weights == w(75, 25));
        CHECK(h.state.rollout->step_records.size() == 2);
        CHECK(h.state.rollout->step_records[0].outcome == "advanced");
        CHECK(h.state.rollout->step_records[0].checks == 3);
        CHECK(h.state.rollout->step_records[0].requests == 3000);
    }
    SUBCASE("duration passed but the last check was inconclusive") {
        h.advance(4min);
        h.expect_applied(pass_tick());
        h.advance(2min);
        h.expect_applied(quiet_tick());
        CHECK(h.state.rollout->step == 0);
        h.advance(10s);
        h.expect_applied(pass_tick());
        CHECK(h.state.rollout->step == 1);
    }
    SUBCASE("duration passed but the last check failed (below the threshold)") {
        h.advance(6min);
        h.expect_applied(fail_tick());
        CHECK(h.state.rollout->step == 0);
        CHECK(h.state.rollout->consecutive_failures == 1);
        CHECK(h.state.phase == Phase::running);
        CHECK(h.names() == Names{"Log", "PersistState"});
    }
    SUBCASE("duration passed, check passed, but the step saw fewer than min_requests") {
        h.advance(6min);
        h.expect_applied(event::Tick{verdict(VerdictKind::pass, 60)});
        CHECK(h.state.rollout->step == 0);
        h.advance(10s);
        h.expect_applied(event::Tick{verdict(VerdictKind::pass, 40)}); // 100 in the step now
        CHECK(h.state.rollout->step == 1);
    }
    SUBCASE("the clock restarts with each step") {
        h.advance(5min);
        h.expect_applied(pass_tick());
        REQUIRE(h.state.rollout->step == 1);
        h.advance(4min);
        h.expect_applied(pass_tick());
        CHECK(h.state.rollout->step == 1);
    }
}

TEST_CASE("walking every step promotes; the old slot stays up for the rollback window") {
    Harness h;
    h.running_b();
    std::vector<std::map<std::string, unsigned>> seen;
    for (int step = 0; step < 3; ++step) {
        h.advance(5min);
        h.expect_applied(pass_tick());
        seen.push_back(h.only<action::PublishWeights>().weights);
    }
    CHECK(seen == std::vector<std::map<std::string, unsigned>>{w(75, 25), w(50, 50), w(25, 75)});
    h.advance(5min);
    h.expect_applied(pass_tick());
    CHECK(h.names() == Names{"PublishWeights", "PersistState", "SetCurrent", "SetPrevious", "RecordHistory", "Notify",
                             "Log"});
    auto publish = h.only<action::PublishWeights>();
    CHECK(publish.weights == w(0, 100));
    CHECK(publish.live == "green");
    CHECK(publish.candidate.empty());
    CHECK(h.only<action::SetCurrent>().release == "B");
    CHECK(h.only<action::SetPrevious>().release == "A");
    CHECK(h.state.phase == Phase::promoted);
    CHECK(h.state.live_slot == "green");
    CHECK(h.state.kept_slot == "blue");
    CHECK(h.state.current_release == "B");
    CHECK(h.state.previous_release == "A");
    CHECK(h.state.rollback_window_until == h.now + 10min);
    CHECK(h.notified() == Names{"promoted"});
    REQUIRE(h.state.history.size() == 2);
    const Rollout& entry = h.state.history.back();
    CHECK(entry.release == "B");
    CHECK(entry.outcome == Outcome::promoted);
    CHECK(entry.step_records.size() == 5);
    CHECK(entry.step_records.back().percent == 100);
    CHECK(entry.step_records[3].requests == 1000);
    CHECK(h.only<action::RecordHistory>().entry == entry);

    // Ticks inside the window change nothing; the first one after it stops the old slot.
    h.advance(9min);
    CHECK(h.feed(pass_tick()).result == Transition::Result::ignored);
    h.advance(1min);
    h.expect_applied(event::Tick{});
    CHECK(h.names() == Names{"StopSlot", "Log", "PersistState"});
    CHECK(h.only<action::StopSlot>().slot == "blue");
    CHECK(h.state.phase == Phase::idle);
    CHECK(h.state.kept_slot.empty());
}

TEST_CASE("RollbackWindowElapsed stops the old slot; ignored elsewhere") {
    Harness h;
    h.promoted_b();
    h.expect_applied(event::RollbackWindowElapsed{});
    CHECK(h.only<action::StopSlot>().slot == "blue");
    CHECK(h.state.phase == Phase::idle);
    CHECK(h.feed(event::RollbackWindowElapsed{}).result == Transition::Result::ignored);
}

TEST_CASE("rollback_window = 0 stops the old slot right at promotion") {
    Harness h;
    h.settings.rollout.rollback_window = 0ms;
    h.running_b();
    h.expect_applied(event::Promote{true});
    CHECK(h.state.phase == Phase::idle);
    CHECK(h.only<action::StopSlot>().slot == "blue");
    CHECK(h.state.kept_slot.empty());
    CHECK(h.state.current_release == "B");
}

// ---------------------------------------------------------------- failures

TEST_CASE("the Nth consecutive failing check rolls back, in the right order") {
    Harness h;
    h.running_b();
    h.advance(10s);
    h.expect_applied(fail_tick());
    CHECK(h.state.phase == Phase::running);
    CHECK(h.state.rollout->consecutive_failures == 1);
    h.advance(10s);
    h.expect_applied(fail_tick());
    // Users first: every request to the live slot before anything else happens.
    CHECK(h.names() == Names{"PublishWeights", "PersistState", "SetCurrent", "MarkBad", "StopSlot", "RecordHistory",
                             "Notify", "Log"});
    auto publish = h.only<action::PublishWeights>();
    CHECK(publish.weights == w(100, 0));
    CHECK(publish.live == "blue");
    CHECK(publish.candidate.empty());
    CHECK(h.only<action::SetCurrent>().release == "A");
    CHECK(h.only<action::MarkBad>().release == "B");
    CHECK(h.only<action::StopSlot>().slot == "green");
    CHECK(h.notified() == Names{"rolled_back"});
    CHECK(h.state.phase == Phase::rolled_back);
    CHECK(h.state.live_slot == "blue");
    CHECK(h.state.current_release == "A");
    CHECK(h.state.rollout->outcome == Outcome::rolled_back);
    CHECK(contains(h.state.rollout->reason, "2 consecutive failing checks at step 1/5 (10%): error rate 10.2% > 5.0%"));
    CHECK(contains(h.last.message, "all traffic is back on blue (A)"));
    REQUIRE(h.state.history.size() == 2);
    CHECK(h.state.history.back().step_records[0].fails == 2);
    CHECK(h.state.history.back().step_records[0].outcome == "rolled back");
}

TEST_CASE("failure_threshold = 1 rolls back on the first failing check") {
    Harness h;
    h.settings.rollout.failure_threshold = 1;
    h.running_b();
    h.expect_applied(fail_tick());
    CHECK(h.state.phase == Phase::rolled_back);
    CHECK(contains(h.state.rollout->reason, "1 consecutive failing check at"));
}

TEST_CASE("a pass resets the failure count; an inconclusive leaves it alone") {
    Harness h;
    h.settings.rollout.failure_threshold = 3;
    h.running_b();
    h.expect_applied(fail_tick());
    h.expect_applied(fail_tick());
    h.expect_applied(pass_tick());
    CHECK(h.state.rollout->consecutive_failures == 0);
    h.expect_applied(fail_tick());
    h.expect_applied(quiet_tick());
    CHECK(h.state.rollout->consecutive_failures == 1);
    h.expect_applied(fail_tick());
    h.expect_applied(quiet_tick());
    CHECK(h.state.phase == Phase::running);
    h.expect_applied(fail_tick());
    CHECK(h.state.phase == Phase::rolled_back);
}

TEST_CASE("a candidate that becomes unhealthy mid-rollout is rolled back") {
    Harness h;
    h.running_b();
    CHECK(h.feed(event::CandidateUnhealthy{"OLD", "stale"}).result == Transition::Result::ignored);
    h.expect_applied(event::CandidateUnhealthy{"B", "3 failed health checks"});
    CHECK(h.names().front() == "PublishWeights");
    CHECK(h.only<action::MarkBad>().release == "B");
    CHECK(contains(h.state.rollout->reason, "became unhealthy: 3 failed health checks"));
}

TEST_CASE("a candidate that fails to start is rolled back before any traffic moves") {
    Harness h;
    h.starting_b();
    h.expect_applied(event::CandidateUnhealthy{"B", "no 2xx on /up within 60s"});
    CHECK(h.only<action::PublishWeights>().weights == w(100, 0));
    CHECK(h.only<action::MarkBad>().release == "B");
    CHECK(contains(h.state.rollout->reason, "failed to become healthy: no 2xx on /up within 60s"));
    CHECK(h.state.rollout->progress() == "before step 1/5 (10%)");
}

// ---------------------------------------------------------------- no traffic

TEST_CASE("no traffic is not a failure: after max_step_duration the rollout pauses for a human") {
    Harness h;
    h.running_b();
    for (int i = 0; i < 179; ++i) {
        h.advance(10s);
        h.expect_applied(quiet_tick());
        REQUIRE(h.state.phase == Phase::running);
    }
    h.advance(10s); // 30 min
    h.expect_applied(quiet_tick());
    CHECK(h.state.phase == Phase::paused);
    CHECK(h.state.rollout->pause_reason == PauseReason::no_traffic);
    CHECK(h.all<action::PublishWeights>().empty()); // traffic stays where it is
    CHECK(h.notified() == Names{"paused"});
    CHECK(contains(h.last.message, "step 1/5 (10%) of B saw no conclusive evidence in 30m"));
    CHECK(contains(h.last.message, "only 3 requests in the window, need 100"));
    CHECK(contains(h.last.message, "`releasectl promote` continues"));
    CHECK(h.state.rollout->consecutive_failures == 0);

    // Paused: passes don't advance...
    h.advance(10min);
    h.expect_applied(pass_tick());
    CHECK(h.state.phase == Phase::paused);
    CHECK(h.state.rollout->step == 0);
    // ...resume restarts the step's clock.
    h.expect_applied(event::Resume{});
    CHECK(h.state.phase == Phase::running);
    CHECK(h.state.rollout->step_started_at == h.now);
    CHECK(h.notified() == Names{"resumed"});
    h.advance(10s);
    h.expect_applied(pass_tick());
    CHECK(h.state.rollout->step == 0);
}

TEST_CASE("pausing freezes progress, never protection") {
    Harness h;
    h.paused_b();
    h.expect_applied(fail_tick());
    CHECK(h.state.phase == Phase::paused);
    h.expect_applied(fail_tick());
    CHECK(h.state.phase == Phase::rolled_back);
    CHECK(h.names().front() == "PublishWeights");
}

// ---------------------------------------------------------------- gates & blue-green

TEST_CASE("pause_before = [100] waits for promote before the last step") {
    Harness h;
    h.settings.rollout.pause_before = {100};
    h.running_b();
    for (int step = 0; step < 3; ++step) {
        h.advance(5min);
        h.expect_applied(pass_tick());
    }
    REQUIRE(h.state.rollout->step == 3);
    h.advance(5min);
    h.expect_applied(pass_tick());
    CHECK(h.state.phase == Phase::paused);
    CHECK(h.state.rollout->pause_reason == PauseReason::waiting_for_promote);
    CHECK(h.state.weights == w(25, 75));
    CHECK(contains(h.last.message, "waits for `releasectl promote` before step 5/5 (100%)"));
    auto refused = h.feed(event::Resume{});
    CHECK(refused.refused());
    CHECK(contains(refused.message, "waits for `releasectl promote`"));
    h.expect_applied(event::Promote{});
    CHECK(h.state.phase == Phase::promoted);
    CHECK(h.state.weights == w(0, 100));
}

TEST_CASE("pause_before the first step holds the candidate at 0 % until promote") {
    Harness h;
    h.settings.rollout.pause_before = {10};
    h.starting_b();
    h.expect_applied(event::CandidateHealthy{"B"});
    CHECK(h.state.phase == Phase::paused);
    CHECK(h.state.rollout->step == -1);
    CHECK(h.state.weights == w(100, 0));
    CHECK(contains(h.last.message, "before step 1/5 (10%)"));
    h.expect_applied(event::Promote{});
    CHECK(h.state.phase == Phase::running);
    CHECK(h.state.weights == w(90, 10));
    CHECK(h.state.rollout->step_records[0].percent == 10);
}

TEST_CASE("blue-green: healthy, then 0 -> 100 at once") {
    Harness h;
    h.live_a();
    h.expect_applied(event::DeployRequested{"B", Strategy::blue_green});
    CHECK(contains(h.last.message, "blue-green"));
    h.expect_applied(event::CandidateHealthy{"B"});
    CHECK(h.state.phase == Phase::promoted);
    CHECK(h.only<action::PublishWeights>().weights == w(0, 100));
    CHECK(h.state.rollout->kind == RolloutKind::blue_green);
}

TEST_CASE("blue-green with wait_for_promote waits at 0 %") {
    Harness h;
    h.settings.rollout.strategy = Strategy::blue_green;
    h.settings.rollout.blue_green_wait_for_promote = true;
    h.starting_b();
    h.expect_applied(event::CandidateHealthy{"B"});
    CHECK(h.state.phase == Phase::paused);
    CHECK(h.state.rollout->pause_reason == PauseReason::waiting_for_promote);
    CHECK(contains(h.last.message, "B is healthy on green: waiting for `releasectl promote` to move all traffic"));
    CHECK(h.state.weights == w(100, 0));
    h.expect_applied(event::Promote{});
    CHECK(h.state.phase == Phase::promoted);
    CHECK(h.state.weights == w(0, 100));
}

// ---------------------------------------------------------------- before_activate

TEST_CASE("before_activate runs after health checks and before traffic") {
    Harness h;
    h.settings.run_before_activate = true;
    h.starting_b();
    h.expect_applied(event::CandidateHealthy{"B"});
    CHECK(h.names() == Names{"RunBeforeActivate", "Log"});
    CHECK(h.state.rollout->start_stage == StartStage::hook);
    CHECK(h.state.weights == w(100, 0));
    CHECK(h.feed(event::CandidateHealthy{"B"}).result == Transition::Result::ignored);

    SUBCASE("success moves traffic") {
        h.expect_applied(event::HookSucceeded{"B"});
        CHECK(h.state.weights == w(90, 10));
    }
    SUBCASE("failure rolls back") {
        h.expect_applied(event::HookFailed{"B", "exit status 3"});
        CHECK(h.state.phase == Phase::rolled_back);
        CHECK(contains(h.state.rollout->reason, "before_activate hook failed: exit status 3"));
        CHECK(h.only<action::MarkBad>().release == "B");
    }
    SUBCASE("hook results are ignored when no hook runs") {
        h.expect_applied(event::HookSucceeded{"B"});
        CHECK(h.feed(event::HookFailed{"B", "late"}).result == Transition::Result::ignored);
        CHECK(h.feed(event::HookSucceeded{"B"}).result == Transition::Result::ignored);
    }
}

// ---------------------------------------------------------------- deploy options

TEST_CASE("deploy options: steps, strategy, step duration; invalid steps are refused") {
    Harness h;
    h.live_a();
    auto bad = h.feed(event::DeployRequested{"B", std::nullopt, std::vector<unsigned>{10, 50}});
    CHECK(bad.refused());
    CHECK(bad.message == "invalid steps: the last step must be 100 (got 50)");
    CHECK(h.feed(event::DeployRequested{"B", std::nullopt, std::vector<unsigned>{50, 20, 100}}).message ==
          "invalid steps: steps must be strictly increasing (20 after 50)");
    CHECK(h.feed(event::DeployRequested{"B", std::nullopt, std::vector<unsigned>{0, 100}}).refused());
    CHECK(h.feed(event::DeployRequested{"B", std::nullopt, std::vector<unsigned>{}}).refused());
    CHECK(h.feed(event::DeployRequested{""}).message == "deploy needs a release id");
    CHECK(h.feed(event::DeployRequested{"A"}).message == "A is already live on blue");

    h.expect_applied(event::DeployRequested{"B", Strategy::canary, std::vector<unsigned>{50, 100}, Duration(30'000)});
    CHECK(h.state.rollout->plan.steps == std::vector<unsigned>{50, 100});
    CHECK(h.state.rollout->plan.step_duration == 30s);
    h.expect_applied(event::CandidateHealthy{"B"});
    CHECK(h.state.weights == w(50, 50));
    h.advance(30s);
    h.expect_applied(pass_tick());
    CHECK(h.state.phase == Phase::promoted);
}

// ---------------------------------------------------------------- manual commands in every state

TEST_CASE("manual commands while idle with nothing live") {
    Harness h;
    CHECK(h.feed(event::Promote{}).message == "nothing to promote: no rollout in progress");
    CHECK(h.feed(event::Promote{true}).refused());
    CHECK(h.feed(event::Rollback{}).message == "nothing to roll back to: no previous release");
    CHECK(h.feed(event::Abort{}).message == "nothing to abort: no rollout in progress");
    CHECK(h.feed(event::Pause{}).message == "nothing to pause: no rollout in progress");
    CHECK(h.feed(event::Resume{}).message == "nothing to resume: no rollout in progress");
    // rollback --to on an empty root: brings that release up as the first one.
    h.expect_applied(event::Rollback{"", true, std::string("OLD")});
    CHECK(h.state.rollout->kind == RolloutKind::initial);
    CHECK(h.only<action::StartSlot>().slot == "blue");
}

TEST_CASE("manual commands while idle with a live release") {
    Harness h;
    h.live_a();
    CHECK(h.feed(event::Promote{}).message == "nothing to promote: no rollout in progress");
    CHECK(h.feed(event::Rollback{}).message == "nothing to roll back to: no previous release");
    CHECK(h.feed(event::Rollback{"", true, std::string("A")}).message == "A is already live on blue");
    CHECK(h.feed(event::Abort{}).refused());
    CHECK(h.feed(event::Pause{}).refused());
    CHECK(h.feed(event::Resume{}).refused());
    h.expect_applied(event::DeployRequested{"B"});
}

TEST_CASE("manual commands while the candidate is starting") {
    Harness h;
    h.starting_b();
    CHECK(h.feed(event::DeployRequested{"C"}).message == "a rollout of B is already in progress (starting on green)");
    CHECK(h.feed(event::Promote{}).message == "nothing to promote yet: B is still starting on green (health checks)");
    CHECK(h.feed(event::Pause{}).refused());
    CHECK(contains(h.feed(event::Resume{}).message, "nothing to resume: B is still starting"));
    CHECK(contains(h.feed(event::Rollback{"", true, std::string("A")}).message,
                   "`releasectl rollback` without --to returns all traffic to blue first"));
    SUBCASE("abort") {
        h.expect_applied(event::Abort{});
        CHECK(h.all<action::MarkBad>().empty());
        CHECK(h.only<action::StopSlot>().slot == "green");
        CHECK(h.state.rollout->outcome == Outcome::aborted);
        CHECK(h.notified() == Names{"aborted"});
    }
    SUBCASE("rollback") {
        h.expect_applied(event::Rollback{});
        CHECK(h.only<action::MarkBad>().release == "B");
        CHECK(h.state.rollout->reason == "rolled back by operator");
    }
}

TEST_CASE("manual commands while running") {
    Harness h;
    h.running_b();
    CHECK(h.feed(event::DeployRequested{"C"}).message == "a rollout of B is already in progress (step 1/5 (10%))");
    CHECK(h.feed(event::Resume{}).message == "nothing to resume: the rollout of B is running (step 1/5 (10%))");
    CHECK(h.feed(event::Rollback{"", true, std::string("OLD")}).refused());
    SUBCASE("promote: next step now, without waiting for evidence") {
        h.expect_applied(event::Promote{});
        CHECK(h.state.weights == w(75, 25));
        CHECK(h.state.rollout->step_records[0].outcome == "promoted by operator");
        h.expect_applied(event::Promote{});
        h.expect_applied(event::Promote{});
        CHECK(h.state.weights == w(25, 75));
        h.expect_applied(event::Promote{});
        CHECK(h.state.phase == Phase::promoted);
    }
    SUBCASE("promote --full") {
        h.expect_applied(event::Promote{true});
        CHECK(h.state.phase == Phase::promoted);
        CHECK(h.state.rollout->reason == "promoted to 100% by operator");
        CHECK(h.only<action::SetCurrent>().release == "B");
    }
    SUBCASE("pause") {
        h.expect_applied(event::Pause{});
        CHECK(h.state.rollout->pause_reason == PauseReason::manual);
        CHECK(h.all<action::PublishWeights>().empty());
        CHECK(contains(h.last.message, "paused by operator at step 1/5 (10%)"));
    }
    SUBCASE("rollback") {
        h.expect_applied(event::Rollback{"error spike in Sentry"});
        CHECK(h.names().front() == "PublishWeights");
        CHECK(h.only<action::MarkBad>().reason == "error spike in Sentry");
        CHECK(h.state.rollout->reason == "error spike in Sentry");
    }
    SUBCASE("abort") {
        h.expect_applied(event::Abort{});
        CHECK(h.names() == Names{"PublishWeights", "PersistState", "SetCurrent", "StopSlot", "RecordHistory", "Notify",
                                 "Log"});
        CHECK(h.state.phase == Phase::rolled_back);
        CHECK(h.state.rollout->outcome == Outcome::aborted);
    }
}

TEST_CASE("manual commands while paused by the operator") {
    Harness h;
    h.paused_b();
    CHECK(contains(h.feed(event::Pause{}).message, "the rollout of B is already paused"));
    CHECK(h.feed(event::DeployRequested{"C"}).message == "a rollout of B is already in progress (step 1/5 (10%), paused)");
    SUBCASE("resume") {
        h.advance(1h);
        h.expect_applied(event::Resume{});
        CHECK(h.state.phase == Phase::running);
        CHECK(h.state.rollout->step_started_at == h.now);
    }
    SUBCASE("promote") {
        h.expect_applied(event::Promote{});
        CHECK(h.state.phase == Phase::running);
        CHECK(h.state.weights == w(75, 25));
    }
    SUBCASE("promote --full") {
        h.expect_applied(event::Promote{true});
        CHECK(h.state.phase == Phase::promoted);
    }
    SUBCASE("rollback") {
        h.expect_applied(event::Rollback{});
        CHECK(h.state.phase == Phase::rolled_back);
    }
    SUBCASE("abort") {
        h.expect_applied(event::Abort{});
        CHECK(h.state.phase == Phase::rolled_back);
    }
}

TEST_CASE("manual commands after promotion, inside the rollback window") {
    Harness h;
    h.promoted_b();
    CHECK(h.feed(event::Promote{}).message == "nothing to promote: B is already at 100%");
    CHECK(h.feed(event::Abort{}).message == "nothing to abort: B is already at 100%; `releasectl rollback` returns to A");
    CHECK(h.feed(event::Pause{}).message == "nothing to pause: B is already at 100%");
    CHECK(h.feed(event::Resume{}).message == "nothing to resume: B is already at 100%");
    CHECK(h.feed(event::Rollback{"", true, std::string("B")}).message == "B is already live on green");

    SUBCASE("rollback is an instant flip to the still-running old slot") {
        h.expect_applied(event::Rollback{});
        CHECK(h.names() == Names{"PublishWeights", "PersistState", "SetCurrent", "MarkBad", "StopSlot",
                                 "RecordHistory", "Notify", "Log"});
        auto publish = h.only<action::PublishWeights>();
        CHECK(publish.weights == w(100, 0));
        CHECK(publish.live == "blue");
        CHECK(h.all<action::StartSlot>().empty()); // nothing to start: blue still runs A
        CHECK(h.only<action::SetCurrent>().release == "A");
        CHECK(h.only<action::MarkBad>().release == "B");
        CHECK(h.only<action::StopSlot>().slot == "green");
        CHECK(h.state.phase == Phase::rolled_back);
        CHECK(h.state.live_slot == "blue");
        CHECK(h.state.current_release == "A");
        CHECK(h.state.previous_release == "A"); // nothing before: the symlink is left alone
        CHECK(h.all<action::SetPrevious>().empty());
        CHECK(h.state.kept_slot.empty());
        REQUIRE(h.state.history.size() == 2); // B's entry rewritten, not duplicated
        CHECK(h.state.history.back().outcome == Outcome::rolled_back);
        CHECK(h.state.history.back().step_records.back().outcome == "rolled back after promotion");
        CHECK(h.notified() == Names{"rolled_back"});
        CHECK(h.feed(event::Rollback{}).refused());
    }
    SUBCASE("rollback --to the old release is the same instant flip") {
        h.expect_applied(event::Rollback{"", true, std::string("A")});
        CHECK(h.state.live_slot == "blue");
        CHECK(h.all<action::StartSlot>().empty());
    }
    SUBCASE("rollback --to another release goes through the kept slot") {
        h.expect_applied(event::Rollback{"", true, std::string("OLDER")});
        CHECK(h.names() == Names{"StopSlot", "Log", "PersistState", "StartSlot", "Notify", "Log"});
        CHECK(h.only<action::StartSlot>().slot == "blue");
        CHECK(h.state.rollout->kind == RolloutKind::restore);
    }
    SUBCASE("a new deploy ends the window early and reuses the old slot") {
        h.expect_applied(event::DeployRequested{"C"});
        CHECK(h.names() == Names{"StopSlot", "Log", "PersistState", "StartSlot", "Notify", "Log"});
        CHECK(h.only<action::StopSlot>().slot == "blue");
        CHECK(h.only<action::StartSlot>().slot == "blue");
        CHECK(h.state.rollout->live_slot == "green");
        CHECK(h.state.rollout->live_release == "B");
        CHECK(h.state.kept_slot.empty());
    }
}

TEST_CASE("rollback after the window brings the previous release back through the idle slot") {
    Harness h;
    h.promoted_b();
    h.advance(10min);
    h.expect_applied(event::Tick{});
    REQUIRE(h.state.phase == Phase::idle);
    h.expect_applied(event::Rollback{});
    CHECK(h.only<action::StartSlot>().slot == "blue");
    CHECK(h.only<action::StartSlot>().release == "A");
    CHECK(h.state.weights == w(0, 100)); // nothing moves before health checks
    CHECK(h.state.rollout->kind == RolloutKind::restore);
    CHECK(contains(h.last.message, "restoring A through blue"));
    h.expect_applied(event::CandidateHealthy{"A"});
    CHECK(h.only<action::PublishWeights>().weights == w(100, 0));
    CHECK(h.only<action::SetCurrent>().release == "A");
    CHECK(h.only<action::SetPrevious>().release == "B");
    CHECK(h.state.phase == Phase::promoted);
    CHECK(h.state.kept_slot == "green");
}

TEST_CASE("manual commands after a rollback") {
    Harness h;
    h.rolled_back_b();
    CHECK(contains(h.feed(event::Promote{}).message, "nothing to promote: the rollout of B was rolled back (2 consecutive"));
    CHECK(contains(h.feed(event::Rollback{}).message, "nothing to roll back: the rollout of B was already rolled back; A is live"));
    CHECK(h.feed(event::Abort{}).message == "nothing to abort: no rollout in progress");
    CHECK(h.feed(event::Pause{}).refused());
    CHECK(h.feed(event::Resume{}).refused());
    CHECK(h.feed(event::Tick{verdict(VerdictKind::fail)}).result == Transition::Result::ignored);
    h.expect_applied(event::DeployRequested{"C"});
    CHECK(h.only<action::StartSlot>().slot == "green");
}

TEST_CASE("internal events in the wrong phase are ignored, not applied") {
    Harness h;
    CHECK(h.feed(event::CandidateHealthy{"X"}).result == Transition::Result::ignored);
    CHECK(h.feed(event::CandidateUnhealthy{"X", ""}).result == Transition::Result::ignored);
    CHECK(h.feed(event::HookFailed{"X", ""}).result == Transition::Result::ignored);
    CHECK(h.feed(pass_tick()).result == Transition::Result::ignored);
    h.starting_b();
    CHECK(h.feed(event::CandidateHealthy{"NOT-B"}).result == Transition::Result::ignored);
    CHECK(h.feed(pass_tick()).result == Transition::Result::ignored);
}

// ---------------------------------------------------------------- crash / restart

TEST_CASE("daemon restart in the middle of a step, on_crash = resume") {
    Harness h;
    h.running_b();
    h.advance(5min);
    h.expect_applied(pass_tick()); // step 2 (25 %)
    h.advance(1min);
    h.expect_applied(fail_tick()); // one failure on the books
    const RolloutState before = h.state;
    h.advance(3s); // the daemon was down for a moment
    h.expect_applied(event::DaemonRestarted{});
    // The persisted route table before anything else.
    CHECK(h.names() == Names{"PublishWeights", "SetCurrent", "StartSlot", "StartSlot", "Log", "PersistState"});
    auto publish = std::get<action::PublishWeights>(h.last.actions.front());
    CHECK(publish.weights == w(75, 25));
    CHECK(publish.candidate == "green");
    CHECK(std::get<action::SetCurrent>(h.last.actions[1]).release == "A");
    auto starts = h.all<action::StartSlot>();
    CHECK(starts[0].slot == "blue");
    CHECK(starts[0].ensure_running);
    CHECK_FALSE(starts[0].report_health);
    CHECK(starts[1].slot == "green");
    CHECK(starts[1].ensure_running);
    CHECK(starts[1].report_health);
    CHECK(h.state.phase == Phase::running);
    CHECK(h.state.rollout->step == 1);
    CHECK(h.state.rollout->consecutive_failures == 1); // kept
    CHECK(h.state.rollout->step_started_at == h.now);  // a fresh window
    CHECK(h.state.rollout->step_records == before.rollout->step_records);
    CHECK(contains(h.last.message, "resuming the rollout of B at step 2/5 (25%)"));
    // The next failure is the Nth.
    h.expect_applied(fail_tick());
    CHECK(h.state.phase == Phase::rolled_back);
}

TEST_CASE("daemon restart in the middle of a step, on_crash = rollback") {
    Harness h;
    h.settings.rollout.on_crash = RolloutConfig::OnCrash::rollback;
    h.running_b();
    h.expect_applied(event::DaemonRestarted{});
    auto names = h.names();
    CHECK(names[0] == "PublishWeights"); // the persisted table first...
    CHECK(std::get<action::PublishWeights>(h.last.actions[0]).weights == w(90, 10));
    CHECK(h.all<action::PublishWeights>().back().weights == w(100, 0)); // ...then the rollback
    CHECK(h.all<action::MarkBad>().empty()); // the release did nothing wrong
    CHECK(h.only<action::StopSlot>().slot == "green");
    CHECK(h.state.phase == Phase::rolled_back);
    CHECK(contains(h.state.rollout->reason, "on_crash = rollback"));
}

TEST_CASE("daemon restart while the candidate was starting restarts its health checks") {
    Harness h;
    h.settings.run_before_activate = true;
    h.starting_b();
    h.expect_applied(event::CandidateHealthy{"B"}); // hook running
    h.expect_applied(event::DaemonRestarted{});
    CHECK(h.state.phase == Phase::starting_candidate);
    CHECK(h.state.rollout->start_stage == StartStage::health);
    auto starts = h.all<action::StartSlot>();
    REQUIRE(starts.size() == 2);
    CHECK(starts[1].slot == "green");
    CHECK_FALSE(starts[1].ensure_running);
    CHECK(starts[1].report_health);
}

TEST_CASE("daemon restart after promotion") {
    Harness h;
    h.promoted_b();
    SUBCASE("inside the window: both slots keep running") {
        h.advance(1min);
        h.expect_applied(event::DaemonRestarted{});
        CHECK(h.state.phase == Phase::promoted);
        auto starts = h.all<action::StartSlot>();
        REQUIRE(starts.size() == 2);
        CHECK(starts[0].slot == "green");
        CHECK(starts[1].slot == "blue");
        CHECK(starts[1].release == "A");
    }
    SUBCASE("the window ran out while down") {
        h.advance(11min);
        h.expect_applied(event::DaemonRestarted{});
        CHECK(h.state.phase == Phase::idle);
        CHECK(h.only<action::StopSlot>().slot == "blue");
    }
}

TEST_CASE("daemon restart when idle republishes and reconciles symlinks") {
    Harness h;
    SUBCASE("fresh install: the [weights] table") {
        h.expect_applied(event::DaemonRestarted{});
        CHECK(h.names() == Names{"PublishWeights", "PersistState"});
        CHECK(h.only<action::PublishWeights>().weights == w(100, 0));
    }
    SUBCASE("a live release") {
        h.live_a();
        h.expect_applied(event::DaemonRestarted{});
        CHECK(h.names() == Names{"PublishWeights", "SetCurrent", "StartSlot", "PersistState"});
        CHECK(h.only<action::StartSlot>().release == "A");
    }
}

TEST_CASE("revision counts applied transitions; history is bounded") {
    Harness h;
    h.settings.history_limit = 3;
    h.live_a();
    CHECK(h.state.revision == 2);
    h.feed(event::Promote{});
    CHECK(h.state.revision == 2); // refusals change nothing
    for (int i = 0; i < 5; ++i) {
        h.expect_applied(event::DeployRequested{"R" + std::to_string(i), Strategy::blue_green});
        h.expect_applied(event::CandidateHealthy{});
    }
    CHECK(h.state.history.size() == 3);
    CHECK(h.state.history.back().release == "R4");
}

TEST_CASE("names for logs") {
    CHECK(std::string(event_name(event::Tick{})) == "Tick");
    CHECK(std::string(action_name(action::MarkBad{})) == "MarkBad");
    CHECK(phase_from_string("promoted") == Phase::promoted);
    CHECK(strategy_from_string("blue-green") == Strategy::blue_green);
    CHECK_FALSE(strategy_from_string("bluegreen"));
    CHECK(validate_steps({10, 100}) == std::nullopt);
}

TEST_CASE("rollback after promotion restores `previous` to what it named before the rollout") {
    Harness h;
    h.promoted_b();
    h.advance(10min);
    h.expect_applied(event::RollbackWindowElapsed{});
    h.expect_applied(event::DeployRequested{"C"});
    CHECK(h.only<action::StartSlot>().slot == "blue");
    h.expect_applied(event::CandidateHealthy{"C"});
    h.expect_applied(event::Promote{true});
    CHECK(h.state.current_release == "C");
    CHECK(h.state.previous_release == "B");
    h.expect_applied(event::Rollback{});
    CHECK(h.only<action::SetCurrent>().release == "B");
    CHECK(h.only<action::SetPrevious>().release == "A");
    CHECK(h.state.current_release == "B");
    CHECK(h.state.previous_release == "A");
    CHECK(h.state.live_slot == "green");
    CHECK(h.only<action::StopSlot>().slot == "blue");
}

TEST_CASE("notifications carry the numbers") {
    Harness h;
    h.running_b();
    auto step = h.only<action::Notify>();
    CHECK(step.event == "step");
    CHECK(step.payload.at("release").as_string() == "B");
    CHECK(step.payload.at("candidate_slot").as_string() == "green");
    CHECK(step.payload.at("percent").as_int64() == 10);
    CHECK(step.payload.at("step").as_int64() == 1);
    h.expect_applied(fail_tick());
    h.expect_applied(fail_tick());
    auto rolled_back = h.only<action::Notify>();
    CHECK(rolled_back.event == "rolled_back");
    CHECK(std::string(rolled_back.payload.at("verdict").as_string()).find("fail: 1000 requests, error rate 10.2%") == 0);
    CHECK(std::string(rolled_back.payload.at("reason").as_string()).find("2 consecutive failing checks") == 0);
}
