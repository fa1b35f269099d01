#pragma once
// Drives the pure rollout machine in tests: an injected clock, the state carried
// from transition to transition, and helpers to reach each phase.
#include "controller/rollout_machine.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace releasectl::testing {

using namespace std::chrono_literals;

inline MachineSettings test_settings() {
    MachineSettings s;
    s.slots = {"blue", "green"};
    s.rollout.steps = {10, 25, 50, 75, 100};
    s.rollout.step_duration = 5min;
    s.rollout.max_step_duration = 30min;
    s.rollout.check_interval = 10s;
    s.rollout.min_requests = 100;
    s.rollout.failure_threshold = 2;
    s.rollout.rollback_window = 10min;
    return s;
}

inline Verdict verdict(VerdictKind kind, std::uint64_t requests = 1000, std::uint64_t errors = 0, double p95 = 0.05) {
    Verdict v;
    v.kind = kind;
    v.requests = requests;
    v.errors = errors;
    v.error_rate = requests ? static_cast<double>(errors) / static_cast<double>(requests) : 0.0;
    v.p95_seconds = p95;
    if (kind == VerdictKind::fail) v.reasons.push_back("error rate 10.2% > 5.0%");
    if (kind == VerdictKind::inconclusive) v.reasons.push_back("only 3 requests in the window, need 100");
    return v;
}
inline event::Tick pass_tick() { return event::Tick{verdict(VerdictKind::pass)}; }
inline event::Tick fail_tick() { return event::Tick{verdict(VerdictKind::fail, 1000, 102)}; }
inline event::Tick quiet_tick() { return event::Tick{verdict(VerdictKind::inconclusive, 3)}; }

struct Harness {
    MachineSettings settings = test_settings();
    RolloutState state;
    TimePoint now{std::chrono::milliseconds(1'763'900'000'000)};
    Transition last;

    Harness() {
        for (const auto& slot : settings.slots) {
            state.slot_release[slot] = "";
            state.weights[slot] = slot == "blue" ? 100 : 0;
        }
    }

    Transition& feed(const Event& e) {
        last = transition(state, e, now, settings);
        if (last.applied()) state = last.state;
        return last;
    }
    Transition& expect_applied(const Event& e) {
        feed(e);
        INFO(last.message);
        REQUIRE(last.applied());
        return last;
    }
    void advance(Duration d) { now += d; }

    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& a : last.actions) out.push_back(action_name(a));
        return out;
    }
    template <typename A> std::vector<A> all() const {
        std::vector<A> out;
        for (const auto& a : last.actions)
            if (auto* p = std::get_if<A>(&a)) out.push_back(*p);
        return out;
    }
    template <typename A> A only() const {
        auto found = all<A>();
        REQUIRE(found.size() == 1);
        return found.front();
    }
    std::vector<std::string> notified() const {
        std::vector<std::string> out;
        for (const auto& n : all<action::Notify>()) out.push_back(n.event);
        return out;
    }

    // --- reaching phases ---
    // blue live with release A (first deploy), idle.
    void live_a() {
        expect_applied(event::DeployRequested{"A"});
        expect_applied(event::CandidateHealthy{"A"});
        if (settings.run_before_activate) expect_applied(event::HookSucceeded{"A"});
        REQUIRE(state.phase == Phase::idle);
    }
    void starting_b() {
        live_a();
        advance(1min);
        expect_applied(event::DeployRequested{"B"});
        REQUIRE(state.phase == Phase::starting_candidate);
    }
    // canary of B on green at step 1 (10 %).
    void running_b() {
        starting_b();
        expect_applied(event::CandidateHealthy{"B"});
        REQUIRE(state.phase == Phase::running);
    }
    // B walked through every step: promoted, blue keeps A for the rollback window.
    void promoted_b() {
        running_b();
        for (int step = 0; step < 4; ++step) {
            advance(5min);
            expect_applied(pass_tick());
        }
        REQUIRE(state.phase == Phase::promoted);
    }
    void paused_b() {
        running_b();
        expect_applied(event::Pause{});
        REQUIRE(state.phase == Phase::paused);
    }
    void rolled_back_b() {
        running_b();
        expect_applied(fail_tick());
        expect_applied(fail_tick());
        REQUIRE(state.phase == Phase::rolled_back);
    }
};

} // namespace releasectl::testing
