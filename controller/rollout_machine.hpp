#pragma once
// The rollout state machine: (state, event, now) -> (state, actions). Pure code:
// no I/O, no clock of its own. The daemon feeds it events (CLI commands, health
// results, analysis ticks) and performs the returned actions in order.
//
// Rules worth knowing (see also tests/controller/rollout_machine_test.cpp):
//  - First deploy with no live slot: start, health-check, hook, 100 % at once.
//  - A canary step advances on a Tick when step_duration has passed since the
//    step started, the last check passed and the step saw >= min_requests.
//  - A pass resets the consecutive-failure counter, a fail increments it (the
//    failure_threshold-th fail rolls back), an inconclusive leaves it alone:
//    missing evidence neither condemns nor absolves the candidate.
//  - A step that cannot advance within max_step_duration pauses (no_traffic);
//    the candidate keeps its share of traffic and a human decides.
//  - Pausing freezes progress, never protection: failing checks still roll back
//    while paused.
//  - Reaching 100 % is the promotion: current -> candidate, previous -> old; the
//    old slot keeps running for rollback_window, then is stopped.
//  - Rollback: weights to the live slot FIRST, then state, symlinks, mark bad, stop.
//  - Resume (manual or no_traffic pause) and DaemonRestarted (on_crash = resume)
//    restart the step's clock and evidence; the failure counter is kept.
#include "controller/analysis.hpp"
#include "controller/config.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace releasectl {

using Clock = std::chrono::system_clock;
// Millisecond wall-clock time: persisted in state.json and meaningful across restarts.
using TimePoint = std::chrono::time_point<Clock, std::chrono::milliseconds>;

// ----------------------------------------------------------------------------
// State

enum class Phase {
    idle,                // no rollout; a live slot or none
    starting_candidate,  // candidate slot starting / health checks / before_activate hook
    running,             // at a step, judged every check_interval
    paused,              // at a step (or before the first), waiting for a human
    promoted,            // at 100 %; the old slot still runs for rollback_window
    rolled_back,         // last rollout was rolled back or aborted; behaves like idle
};
enum class PauseReason { manual, waiting_for_promote, no_traffic };
enum class StartStage { health, hook };
// initial: first release on an empty root; restore: `rollback` / `rollback --to`
// bringing a release back through the idle slot.
enum class RolloutKind { canary, blue_green, initial, restore };
enum class Outcome { in_progress, promoted, rolled_back, aborted };

const char* to_string(Phase);
const char* to_string(PauseReason);
const char* to_string(StartStage);
const char* to_string(RolloutKind);
const char* to_string(Outcome);
const char* to_string(Strategy);
std::optional<Phase> phase_from_string(std::string_view);
std::optional<PauseReason> pause_reason_from_string(std::string_view);
std::optional<StartStage> start_stage_from_string(std::string_view);
std::optional<RolloutKind> rollout_kind_from_string(std::string_view);
std::optional<Outcome> outcome_from_string(std::string_view);
std::optional<Strategy> strategy_from_string(std::string_view); // "canary", "blue-green"

// The per-rollout plan, fixed at deploy time (so a restart resumes the same plan).
struct RolloutPlan {
    Strategy strategy = Strategy::canary;
    std::vector<unsigned> steps{10, 25, 50, 75, 100};
    std::vector<unsigned> gates;       // percentages that wait for `promote` first
    Duration step_duration{300'000};
    bool operator==(const RolloutPlan&) const = default;
};

// Evidence and outcome of one step, kept in history.
struct StepRecord {
    unsigned percent = 0;
    TimePoint started_at{};
    std::optional<TimePoint> ended_at;
    std::uint64_t requests = 0;         // sum over checks
    std::uint64_t errors = 0;
    double max_p95_seconds = 0.0;       // worst check
    unsigned checks = 0, passes = 0, fails = 0, inconclusives = 0;
    std::string outcome;                // "advanced", "promoted by operator", "rolled back", ...
    bool operator==(const StepRecord&) const = default;
};

struct Rollout {
    RolloutKind kind = RolloutKind::canary;
    std::string release;              // candidate release id
    std::string candidate_slot;
    std::string live_slot;            // baseline; empty on the first deploy
    std::string live_release;         // what users were on when it started
    std::string previous_before;      // `previous` when it started (restored on rollback)
    RolloutPlan plan;
    TimePoint started_at{};
    StartStage start_stage = StartStage::health;
    int step = -1;                    // index into plan.steps; -1 = no traffic yet
    TimePoint step_started_at{};
    unsigned consecutive_failures = 0;
    std::uint64_t step_requests = 0;  // requests seen by the current step
    std::optional<Verdict> last_verdict;
    std::optional<TimePoint> last_check_at;
    PauseReason pause_reason = PauseReason::manual;
    std::string pause_message;
    std::optional<TimePoint> paused_at;
    std::vector<StepRecord> step_records;
    Outcome outcome = Outcome::in_progress;
    std::string reason;               // why it ended as it did (rollback cause etc.)
    std::optional<TimePoint> finished_at;
    bool operator==(const Rollout&) const = default;

    unsigned percent() const;         // candidate's current share, 0 before step 1
    std::string progress() const;     // "step 2/5 (25%)", "waiting before step 1/5 (10%)"
};

struct RolloutState {
    Phase phase = Phase::idle;
    std::map<std::string, std::string> slot_release; // slot -> bound release ("" = none)
    std::string live_slot;                           // "" = nothing live yet
    std::map<std::string, unsigned> weights;         // what is published
    std::string current_release;                     // mirrors <root>/current
    std::string previous_release;                    // mirrors <root>/previous
    std::optional<Rollout> rollout;                  // in progress, or the last finished one
    std::string kept_slot;                           // promoted: old slot still running
    std::optional<TimePoint> rollback_window_until;  // promoted: when kept_slot stops
    std::vector<Rollout> history;                    // finished rollouts, oldest first
    std::uint64_t revision = 0;                      // +1 per applied transition
    bool operator==(const RolloutState&) const = default;

    // A fresh state for the configured slots and [weights] (no rollout yet).
    static RolloutState initial(const Config& config);
    bool rollout_active() const; // starting_candidate, running or paused
};

// Settings the machine needs, derived from Config (re-derive after SIGHUP).
struct MachineSettings {
    std::vector<std::string> slots;  // declaration order
    RolloutConfig rollout;
    bool run_before_activate = false; // [app] before_activate configured
    std::size_t history_limit = 100;
    static MachineSettings from(const Config& config);
};

// ----------------------------------------------------------------------------
// Events

namespace event {
struct DeployRequested {
    std::string release;
    std::optional<Strategy> strategy{};            // default: [rollout] strategy
    std::optional<std::vector<unsigned>> steps{};  // default: [rollout] steps
    std::optional<Duration> step_duration{};       // default: [rollout] step_duration
};
// Health / hook results for the candidate. `release` guards against stale
// results from an earlier candidate (empty = don't check).
struct CandidateHealthy { std::string release; };
struct CandidateUnhealthy { std::string release; std::string reason{}; }; // incl. failed to start
struct HookSucceeded { std::string release; };
struct HookFailed { std::string release; std::string reason{}; };
// Every check_interval, whatever the phase. `verdict` judges the candidate's
// window (absent when there is no candidate to judge).
struct Tick { std::optional<Verdict> verdict; };
struct Promote { bool full = false; };
struct Rollback {
    std::string reason{};              // human text; default chosen by the machine
    bool manual = true;
    std::optional<std::string> to{};   // `rollback --to ID` (daemon checks ID exists)
};
struct Abort {};
struct Pause {};
struct Resume {};
struct RollbackWindowElapsed {};
struct DaemonRestarted {};
} // namespace event

using Event = std::variant<event::DeployRequested, event::CandidateHealthy, event::CandidateUnhealthy,
                           event::HookSucceeded, event::HookFailed, event::Tick, event::Promote,
                           event::Rollback, event::Abort, event::Pause, event::Resume,
                           event::RollbackWindowElapsed, event::DaemonRestarted>;

// ----------------------------------------------------------------------------
// Actions (perform in order)

namespace action {
// Bind slots/<slot> -> releases/<release> and start its app if configured.
// ensure_running: after a daemon restart; a slot already running that release is
// left alone. report_health: health-check it and feed back CandidateHealthy /
// CandidateUnhealthy{release} (the rollout's candidate); otherwise just supervise.
struct StartSlot {
    std::string slot;
    std::string release;
    bool ensure_running = false;
    bool report_health = true;
};
struct StopSlot { std::string slot; std::string reason; };       // drain, then stop its app
struct RunBeforeActivate { std::string slot; std::string release; }; // -> HookSucceeded/HookFailed
// Publish a route table: every slot's weight (percent), live and candidate slot names.
struct PublishWeights {
    std::map<std::string, unsigned> weights;
    std::string live;
    std::string candidate; // "" = none
};
struct SetCurrent { std::string release; };
struct SetPrevious { std::string release; };
struct MarkBad { std::string release; std::string reason; };
// Event: started, step, paused, resumed, promoted, rolled_back, aborted.
struct Notify { std::string event; boost::json::object payload; };
struct PersistState {};                  // write state.json now (atomically)
struct RecordHistory { Rollout entry; }; // a rollout finished (already in state.history)
struct Log { enum class Level { info, warn, error } level = Level::info; std::string message; };
} // namespace action

using Action = std::variant<action::StartSlot, action::StopSlot, action::RunBeforeActivate,
                            action::PublishWeights, action::SetCurrent, action::SetPrevious,
                            action::MarkBad, action::Notify, action::PersistState,
                            action::RecordHistory, action::Log>;

// ----------------------------------------------------------------------------
// Transition

struct Transition {
    enum class Result { applied, refused, ignored };
    Result result = Result::applied;
    RolloutState state;            // unchanged unless applied
    std::vector<Action> actions;   // empty unless applied
    // applied: what happened, for the CLI ("deploying 20261123 to green: ...");
    // refused: why not ("nothing to promote: no rollout in progress");
    // ignored: why an internal event had no effect (stale, wrong phase).
    std::string message;

    bool applied() const { return result == Result::applied; }
    bool refused() const { return result == Result::refused; }
};

Transition transition(const RolloutState& state, const Event& event, TimePoint now,
                      const MachineSettings& settings);

// Validates --steps; returns an error sentence or nullopt.
std::optional<std::string> validate_steps(const std::vector<unsigned>& steps);

// Name of an action / event kind, for logs and tests ("PublishWeights", "Tick").
const char* action_name(const Action& action);
const char* event_name(const Event& event);

} // namespace releasectl
