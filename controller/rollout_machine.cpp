#include "controller/rollout_machine.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace releasectl {

// ----------------------------------------------------------------------------
// Names

const char* to_string(Phase phase) {
    switch (phase) {
    case Phase::idle: return "idle";
    case Phase::starting_candidate: return "starting_candidate";
    case Phase::running: return "running";
    case Phase::paused: return "paused";
    case Phase::promoted: return "promoted";
    case Phase::rolled_back: return "rolled_back";
    }
    return "idle";
}
const char* to_string(PauseReason reason) {
    switch (reason) {
    case PauseReason::manual: return "manual";
    case PauseReason::waiting_for_promote: return "waiting_for_promote";
    case PauseReason::no_traffic: return "no_traffic";
    }
    return "manual";
}
const char* to_string(StartStage stage) { return stage == StartStage::hook ? "hook" : "health"; }
const char* to_string(RolloutKind kind) {
    switch (kind) {
    case RolloutKind::canary: return "canary";
    case RolloutKind::blue_green: return "blue-green";
    case RolloutKind::initial: return "initial";
    case RolloutKind::restore: return "restore";
    }
    return "canary";
}
const char* to_string(Outcome outcome) {
    switch (outcome) {
    case Outcome::in_progress: return "in_progress";
    case Outcome::promoted: return "promoted";
    case Outcome::rolled_back: return "rolled_back";
    case Outcome::aborted: return "aborted";
    }
    return "in_progress";
}
const char* to_string(Strategy strategy) { return strategy == Strategy::blue_green ? "blue-green" : "canary"; }

namespace {
template <typename Enum, std::size_t N>
std::optional<Enum> parse_enum(std::string_view text, const Enum (&values)[N]) {
    for (Enum value : values)
        if (text == to_string(value)) return value;
    return std::nullopt;
}
} // namespace

std::optional<Phase> phase_from_string(std::string_view text) {
    static constexpr Phase all[] = {Phase::idle, Phase::starting_candidate, Phase::running,
                                    Phase::paused, Phase::promoted, Phase::rolled_back};
    return parse_enum(text, all);
}
std::optional<PauseReason> pause_reason_from_string(std::string_view text) {
    static constexpr PauseReason all[] = {PauseReason::manual, PauseReason::waiting_for_promote,
                                          PauseReason::no_traffic};
    return parse_enum(text, all);
}
std::optional<StartStage> start_stage_from_string(std::string_view text) {
    static constexpr StartStage all[] = {StartStage::health, StartStage::hook};
    return parse_enum(text, all);
}
std::optional<RolloutKind> rollout_kind_from_string(std::string_view text) {
    static constexpr RolloutKind all[] = {RolloutKind::canary, RolloutKind::blue_green,
                                          RolloutKind::initial, RolloutKind::restore};
    return parse_enum(text, all);
}
std::optional<Outcome> outcome_from_string(std::string_view text) {
    static constexpr Outcome all[] = {Outcome::in_progress, Outcome::promoted, Outcome::rolled_back,
                                      Outcome::aborted};
    return parse_enum(text, all);
}
std::optional<Strategy> strategy_from_string(std::string_view text) {
    static constexpr Strategy all[] = {Strategy::canary, Strategy::blue_green};
    return parse_enum(text, all);
}

const char* action_name(const Action& action) {
    static constexpr const char* names[] = {"StartSlot", "StopSlot", "RunBeforeActivate",
                                            "PublishWeights", "SetCurrent", "SetPrevious", "MarkBad",
                                            "Notify", "PersistState", "RecordHistory", "Log"};
    return names[action.index()];
}
const char* event_name(const Event& event) {
    static constexpr const char* names[] = {
        "DeployRequested", "CandidateHealthy", "CandidateUnhealthy", "HookSucceeded", "HookFailed",
        "Tick", "Promote", "Rollback", "Abort", "Pause", "Resume", "RollbackWindowElapsed",
        "DaemonRestarted"};
    return names[event.index()];
}

// ----------------------------------------------------------------------------
// Value helpers

unsigned Rollout::percent() const {
    if (outcome == Outcome::promoted) return 100;
    if (step < 0 || static_cast<std::size_t>(step) >= plan.steps.size()) return 0;
    return plan.steps[static_cast<std::size_t>(step)];
}

std::string Rollout::progress() const {
    const std::size_t count = plan.steps.size();
    if (outcome == Outcome::promoted) return "100%";
    if (step < 0) {
        if (count == 0) return "before the first step";
        return fmt::format("before step 1/{} ({}%)", count, plan.steps.front());
    }
    return fmt::format("step {}/{} ({}%)", step + 1, count, percent());
}

bool RolloutState::rollout_active() const {
    return phase == Phase::starting_candidate || phase == Phase::running || phase == Phase::paused;
}

RolloutState RolloutState::initial(const Config& config) {
    RolloutState state;
    for (const SlotConfig& slot : config.slots) {
        state.slot_release[slot.name] = "";
        auto it = config.weights.find(slot.name);
        state.weights[slot.name] = it == config.weights.end() ? 0u : it->second;
    }
    return state;
}

MachineSettings MachineSettings::from(const Config& config) {
    MachineSettings settings;
    for (const SlotConfig& slot : config.slots) settings.slots.push_back(slot.name);
    settings.rollout = config.rollout;
    settings.run_before_activate = config.app.configured && !config.app.before_activate.empty();
    return settings;
}

std::optional<std::string> validate_steps(const std::vector<unsigned>& steps) {
    if (steps.empty()) return std::string("steps must not be empty (e.g. 10,25,50,75,100)");
    for (std::size_t i = 0; i < steps.size(); ++i) {
        if (steps[i] < 1 || steps[i] > 100)
            return fmt::format("step {} is {}: steps are percentages from 1 to 100", i + 1, steps[i]);
        if (i > 0 && steps[i] <= steps[i - 1])
            return fmt::format("steps must be strictly increasing ({} after {})", steps[i], steps[i - 1]);
    }
    if (steps.back() != 100) return fmt::format("the last step must be 100 (got {})", steps.back());
    return std::nullopt;
}

// ----------------------------------------------------------------------------
// The machine

namespace {

std::string join_steps(const std::vector<unsigned>& steps) {
    std::string text;
    for (std::size_t i = 0; i < steps.size(); ++i) text += (i ? "→" : "") + std::to_string(steps[i]);
    return text;
}

std::string join_reasons(const std::vector<std::string>& reasons) {
    std::string text;
    for (std::size_t i = 0; i < reasons.size(); ++i) text += (i ? "; " : "") + reasons[i];
    return text;
}

Transition refuse(const RolloutState& state, std::string message) {
    return Transition{Transition::Result::refused, state, {}, std::move(message)};
}
Transition ignore(const RolloutState& state, std::string message) {
    return Transition{Transition::Result::ignored, state, {}, std::move(message)};
}

// One transition under construction: a copy of the state, the actions so far.
class Step {
public:
    Step(const RolloutState& state, TimePoint now, const MachineSettings& settings)
        : s(state), now(now), settings(settings) {}

    RolloutState s;
    const TimePoint now;
    const MachineSettings& settings;
    std::vector<Action> actions;
    std::string message;

    Rollout& r() { return *s.rollout; }
    const RolloutConfig& policy() const { return settings.rollout; }

    template <typename A> void act(A a) { actions.emplace_back(std::move(a)); }
    void log(action::Log::Level level, std::string text) { act(action::Log{level, std::move(text)}); }
    void persist() { act(action::PersistState{}); }

    Transition finish() {
        ++s.revision;
        return Transition{Transition::Result::applied, std::move(s), std::move(actions), std::move(message)};
    }

    // Weights: `live` gets 100 - share, `candidate` gets share, all others 0.
    void publish(const std::string& live, const std::string& candidate, unsigned candidate_share) {
        std::map<std::string, unsigned> weights;
        for (const std::string& slot : settings.slots) weights[slot] = 0;
        for (const auto& entry : s.weights) weights.emplace(entry.first, 0u);
        if (!live.empty()) weights[live] = 100 - candidate_share;
        if (!candidate.empty()) weights[candidate] += candidate_share;
        s.weights = weights;
        act(action::PublishWeights{std::move(weights), live, candidate_share > 0 ? candidate : ""});
    }

    boost::json::object payload() {
        boost::json::object o;
        if (!s.rollout) return o;
        const Rollout& ro = *s.rollout;
        o["release"] = ro.release;
        o["kind"] = to_string(ro.kind);
        o["candidate_slot"] = ro.candidate_slot;
        o["live_slot"] = ro.live_slot;
        o["live_release"] = ro.live_release;
        o["step"] = static_cast<std::int64_t>(ro.step + 1);
        o["steps"] = static_cast<std::int64_t>(ro.plan.steps.size());
        o["percent"] = static_cast<std::int64_t>(ro.percent());
        o["progress"] = ro.progress();
        if (ro.last_verdict) o["verdict"] = ro.last_verdict->summary();
        if (!ro.reason.empty()) o["reason"] = ro.reason;
        return o;
    }
    void notify(const char* event, std::string message_text) {
        boost::json::object o = payload();
        o["message"] = message_text;
        act(action::Notify{event, std::move(o)});
    }

    void close_step_record(const std::string& outcome) {
        if (!s.rollout || r().step_records.empty()) return;
        StepRecord& record = r().step_records.back();
        if (!record.ended_at) {
            record.ended_at = now;
            record.outcome = outcome;
        }
    }

    void add_history(const Rollout& entry) {
        s.history.push_back(entry);
        while (s.history.size() > settings.history_limit && !s.history.empty())
            s.history.erase(s.history.begin());
        act(action::RecordHistory{entry});
    }

    // Replace the history entry of this rollout (after a post-promotion rollback).
    void update_history(const Rollout& entry) {
        for (auto it = s.history.rbegin(); it != s.history.rend(); ++it) {
            if (it->release == entry.release && it->started_at == entry.started_at) {
                *it = entry;
                act(action::RecordHistory{entry});
                return;
            }
        }
        add_history(entry);
    }

    // Slot a new release goes to: not live; prefer an empty one, then one that is
    // not kept for rollback.
    std::string pick_idle_slot() const {
        std::string best;
        int best_score = -1;
        for (const std::string& slot : settings.slots) {
            if (slot == s.live_slot) continue;
            auto bound = s.slot_release.find(slot);
            int score = 0;
            if (bound == s.slot_release.end() || bound->second.empty()) score += 2;
            if (slot != s.kept_slot) score += 1;
            if (score > best_score) best = slot, best_score = score;
        }
        return best;
    }

    // The slot a first release goes live on: the one [weights] favours.
    std::string initial_slot() const {
        std::string best;
        unsigned best_weight = 0;
        for (const std::string& slot : settings.slots) {
            auto it = s.weights.find(slot);
            unsigned weight = it == s.weights.end() ? 0 : it->second;
            if (best.empty() || weight > best_weight) best = slot, best_weight = weight;
        }
        return best;
    }

    // Promoted phase over: the old slot is no longer needed.
    void end_rollback_window(const std::string& why) {
        if (!s.kept_slot.empty()) act(action::StopSlot{s.kept_slot, why});
        log(action::Log::Level::info,
            fmt::format("rollback window over ({}): stopping {}", why, s.kept_slot));
        s.kept_slot.clear();
        s.rollback_window_until.reset();
        s.phase = Phase::idle;
    }

    void start_rollout(RolloutKind kind, const std::string& release, const std::string& slot, RolloutPlan plan) {
        if (s.phase == Phase::promoted) end_rollback_window("a new rollout replaces the old slot");
        Rollout ro;
        ro.kind = kind;
        ro.release = release;
        ro.candidate_slot = slot;
        ro.live_slot = s.live_slot;
        ro.live_release = s.live_slot.empty() ? "" : s.current_release;
        ro.previous_before = s.previous_release;
        ro.plan = std::move(plan);
        ro.started_at = now;
        ro.step_started_at = now;
        s.rollout = std::move(ro);
        s.phase = Phase::starting_candidate;
        s.slot_release[slot] = release;
        persist();
        act(action::StartSlot{slot, release, false, true});
        notify("started", message);
        log(action::Log::Level::info, message);
    }

    // Health checks (and the hook) passed: traffic may move.
    void activate() {
        if (r().kind == RolloutKind::initial || r().kind == RolloutKind::restore) {
            go_full("health checks passed");
            return;
        }
        enter_step(0, false);
    }

    bool gated(unsigned percent) const {
        const auto& gates = s.rollout->plan.gates;
        return std::find(gates.begin(), gates.end(), percent) != gates.end();
    }

    void pause(PauseReason reason, std::string text) {
        s.phase = Phase::paused;
        r().pause_reason = reason;
        r().pause_message = text;
        r().paused_at = now;
        message = text;
        persist();
        notify("paused", text);
        log(action::Log::Level::warn, text);
    }

    // Move to plan step `index` (or pause at its gate, or promote at 100 %).
    void enter_step(std::size_t index, bool by_operator) {
        Rollout& ro = r();
        const unsigned percent = ro.plan.steps[index];
        if (!by_operator && gated(percent)) {
            std::string text =
                ro.kind == RolloutKind::blue_green && percent == 100
                    ? fmt::format("{} is healthy on {}: waiting for `releasectl promote` to move all traffic",
                                  ro.release, ro.candidate_slot)
                    : fmt::format("rollout of {} waits for `releasectl promote` before step {}/{} ({}%)",
                                  ro.release, index + 1, ro.plan.steps.size(), percent);
            pause(PauseReason::waiting_for_promote, std::move(text));
            return;
        }
        if (percent >= 100) {
            go_full(by_operator ? "promoted by operator" : "all steps passed");
            return;
        }
        close_step_record(by_operator ? "promoted by operator" : "advanced");
        ro.step = static_cast<int>(index);
        ro.step_started_at = now;
        ro.step_requests = 0;
        ro.last_verdict.reset();
        ro.last_check_at.reset();
        ro.paused_at.reset();
        ro.pause_message.clear();
        StepRecord record;
        record.percent = percent;
        record.started_at = now;
        ro.step_records.push_back(record);
        s.phase = Phase::running;
        message = fmt::format("{} on {}: {}, {} stays on {}", ro.release, ro.candidate_slot, ro.progress(),
                              ro.live_release.empty() ? std::string("the rest") : ro.live_release,
                              ro.live_slot);
        publish(ro.live_slot, ro.candidate_slot, percent);
        persist();
        notify("step", message);
        log(action::Log::Level::info, message);
    }

    // 100 % to the candidate; it becomes current.
    void go_full(const std::string& why) {
        Rollout& ro = r();
        close_step_record(why);
        StepRecord full;
        full.percent = 100;
        full.started_at = now;
        full.ended_at = now;
        full.outcome = "promoted";
        ro.step_records.push_back(full);
        ro.step = static_cast<int>(ro.plan.steps.size()) - 1;
        ro.step_started_at = now;
        ro.outcome = Outcome::promoted;
        ro.reason = why;
        ro.finished_at = now;
        ro.paused_at.reset();
        ro.pause_message.clear();

        const std::string old_slot = ro.live_slot;
        publish(ro.candidate_slot, "", 0);
        s.live_slot = ro.candidate_slot;
        s.current_release = ro.release;
        if (!ro.live_release.empty()) s.previous_release = ro.live_release;
        const bool keep_old = !old_slot.empty() && old_slot != ro.candidate_slot;
        if (keep_old) {
            s.phase = Phase::promoted;
            s.kept_slot = old_slot;
            s.rollback_window_until = now + policy().rollback_window;
        } else {
            s.phase = Phase::idle;
        }
        persist();
        act(action::SetCurrent{ro.release});
        if (!ro.live_release.empty()) act(action::SetPrevious{ro.live_release});
        message = keep_old
                      ? fmt::format("{} is live at 100% on {} ({}); {} keeps running {} for {} so rollback stays instant",
                                    ro.release, ro.candidate_slot, why, old_slot, ro.live_release,
                                    proxy::format_duration(policy().rollback_window))
                      : fmt::format("{} is live at 100% on {} ({})", ro.release, ro.candidate_slot, why);
        add_history(ro);
        notify("promoted", message);
        log(action::Log::Level::info, message);
        if (keep_old && policy().rollback_window.count() <= 0) end_rollback_window("rollback_window is 0");
    }

    // Ends an active rollout: every user back on the live slot FIRST.
    void roll_back_active(const std::string& reason, bool mark_bad, Outcome outcome) {
        Rollout& ro = r();
        if (!ro.live_slot.empty()) publish(ro.live_slot, "", 0);
        close_step_record(outcome == Outcome::aborted ? "aborted" : "rolled back");
        ro.outcome = outcome;
        ro.reason = reason;
        ro.finished_at = now;
        s.phase = Phase::rolled_back;
        persist();
        if (!ro.live_release.empty()) act(action::SetCurrent{ro.live_release});
        if (mark_bad) act(action::MarkBad{ro.release, reason});
        act(action::StopSlot{ro.candidate_slot, reason});
        const std::string back_to =
            ro.live_slot.empty() ? std::string("no release is live")
                                 : fmt::format("all traffic is back on {} ({})", ro.live_slot, ro.live_release);
        message = fmt::format("{} {} {}: {}; {}", outcome == Outcome::aborted ? "aborted" : "rolled back",
                              ro.release, ro.progress(), reason, back_to);
        add_history(ro);
        notify(outcome == Outcome::aborted ? "aborted" : "rolled_back", message);
        log(action::Log::Level::warn, message);
    }

    // Rollback within the rollback window: the old slot still runs, flip back.
    void roll_back_promoted(const std::string& reason) {
        Rollout& ro = r();
        const std::string old_slot = s.kept_slot;
        publish(old_slot, "", 0);
        s.live_slot = old_slot;
        s.current_release = ro.live_release;
        // `previous` goes back to what it named before this rollout; with nothing to
        // go back to, the symlink stays as it is and the state keeps mirroring it.
        if (!ro.previous_before.empty()) s.previous_release = ro.previous_before;
        s.kept_slot.clear();
        s.rollback_window_until.reset();
        ro.outcome = Outcome::rolled_back;
        ro.reason = reason;
        ro.finished_at = now;
        if (!ro.step_records.empty()) ro.step_records.back().outcome = "rolled back after promotion";
        s.phase = Phase::rolled_back;
        persist();
        act(action::SetCurrent{ro.live_release});
        if (!ro.previous_before.empty()) act(action::SetPrevious{ro.previous_before});
        act(action::MarkBad{ro.release, reason});
        act(action::StopSlot{ro.candidate_slot, reason});
        message = fmt::format("rolled back {}: {}; all traffic is back on {} ({})", ro.release, reason,
                              old_slot, ro.live_release);
        update_history(ro);
        notify("rolled_back", message);
        log(action::Log::Level::warn, message);
    }

    // Bring an existing release back through the idle slot (health-checked first).
    std::optional<std::string> restore(const std::string& release) {
        std::string slot = s.live_slot.empty() ? initial_slot() : pick_idle_slot();
        if (slot.empty()) return std::string("no idle slot to restore into: configure at least two [slots]");
        RolloutPlan plan;
        plan.strategy = Strategy::blue_green;
        plan.steps = {100};
        message = fmt::format("restoring {} through {}: 100% once healthy", release, slot);
        start_rollout(s.live_slot.empty() ? RolloutKind::initial : RolloutKind::restore, release, slot,
                      std::move(plan));
        return std::nullopt;
    }

    void apply_verdict(const Verdict& verdict) {
        Rollout& ro = r();
        ro.last_verdict = verdict;
        ro.last_check_at = now;
        ro.step_requests += verdict.requests;
        if (ro.step >= 0 && !ro.step_records.empty()) {
            StepRecord& record = ro.step_records.back();
            record.requests += verdict.requests;
            record.errors += verdict.errors;
            record.max_p95_seconds = std::max(record.max_p95_seconds, verdict.p95_seconds);
            ++record.checks;
            if (verdict.kind == VerdictKind::pass) ++record.passes;
            if (verdict.kind == VerdictKind::fail) ++record.fails;
            if (verdict.kind == VerdictKind::inconclusive) ++record.inconclusives;
        }
        switch (verdict.kind) {
        case VerdictKind::pass: ro.consecutive_failures = 0; break;
        case VerdictKind::fail: ++ro.consecutive_failures; break;
        case VerdictKind::inconclusive: break; // missing evidence neither condemns nor absolves
        }
        const unsigned threshold = std::max(1u, policy().failure_threshold);
        if (verdict.kind == VerdictKind::fail && ro.consecutive_failures >= threshold) {
            roll_back_active(fmt::format("{} consecutive failing check{} at {}: {}", ro.consecutive_failures,
                                         ro.consecutive_failures == 1 ? "" : "s", ro.progress(),
                                         join_reasons(verdict.reasons)),
                             true, Outcome::rolled_back);
            return;
        }
        if (verdict.kind == VerdictKind::fail)
            log(action::Log::Level::warn, fmt::format("check failed ({}/{}) for {} at {}: {}",
                                                      ro.consecutive_failures, threshold, ro.release,
                                                      ro.progress(), join_reasons(verdict.reasons)));
        if (s.phase != Phase::running) { // paused: progress frozen, protection not
            message = fmt::format("paused at {}: {}", ro.progress(), verdict.summary());
            persist();
            return;
        }
        const auto elapsed = now - ro.step_started_at;
        const bool can_advance = elapsed >= ro.plan.step_duration && verdict.kind == VerdictKind::pass &&
                                 ro.step_requests >= policy().min_requests;
        if (can_advance) {
            enter_step(static_cast<std::size_t>(ro.step) + 1, false);
            return;
        }
        if (elapsed >= policy().max_step_duration) {
            pause(PauseReason::no_traffic,
                  fmt::format("{} of {} saw no conclusive evidence in {} (last check: {}); traffic stays at {}%: "
                              "`releasectl promote` continues, `releasectl rollback` returns everyone to {}",
                              ro.progress(), ro.release, proxy::format_duration(policy().max_step_duration),
                              verdict.summary(), ro.percent(), ro.live_slot));
            return;
        }
        message = fmt::format("{}: {}", ro.progress(), verdict.summary());
        persist();
    }
};

std::string in_progress_text(const RolloutState& s) {
    const Rollout& ro = *s.rollout;
    if (s.phase == Phase::starting_candidate)
        return fmt::format("a rollout of {} is already in progress (starting on {})", ro.release, ro.candidate_slot);
    return fmt::format("a rollout of {} is already in progress ({}{})", ro.release, ro.progress(),
                       s.phase == Phase::paused ? ", paused" : "");
}

std::string starting_text(const Rollout& ro) {
    return fmt::format("{} is still starting on {} ({})", ro.release, ro.candidate_slot,
                       ro.start_stage == StartStage::hook ? "before_activate hook" : "health checks");
}

bool stale(const std::string& event_release, const RolloutState& s) {
    return !event_release.empty() && (!s.rollout || s.rollout->release != event_release);
}

// --- handlers -----------------------------------------------------------------

Transition on(const event::DeployRequested& e, Step& st) {
    const RolloutState& s = st.s;
    if (s.rollout_active()) return refuse(s, in_progress_text(s));
    if (e.release.empty()) return refuse(s, "deploy needs a release id");
    if (!s.live_slot.empty() && e.release == s.current_release)
        return refuse(s, fmt::format("{} is already live on {}", e.release, s.live_slot));
    const RolloutConfig& policy = st.policy();

    RolloutPlan plan;
    plan.strategy = e.strategy.value_or(policy.strategy);
    plan.step_duration = e.step_duration.value_or(policy.step_duration);
    if (plan.step_duration.count() <= 0) return refuse(s, "step duration must be positive");
    if (plan.strategy == Strategy::blue_green) {
        plan.steps = {100};
    } else {
        plan.steps = e.steps.value_or(policy.steps);
        if (auto error = validate_steps(plan.steps)) return refuse(s, "invalid steps: " + *error);
    }
    for (unsigned gate : policy.pause_before)
        if (std::find(plan.steps.begin(), plan.steps.end(), gate) != plan.steps.end()) plan.gates.push_back(gate);
    if (plan.strategy == Strategy::blue_green && policy.blue_green_wait_for_promote &&
        std::find(plan.gates.begin(), plan.gates.end(), 100u) == plan.gates.end())
        plan.gates.push_back(100);

    if (s.live_slot.empty()) {
        const std::string slot = st.initial_slot();
        if (slot.empty()) return refuse(s, "no slots configured");
        plan.steps = {100};
        plan.gates.clear();
        st.message = fmt::format("first release {} on {}: live at 100% once healthy", e.release, slot);
        st.start_rollout(RolloutKind::initial, e.release, slot, std::move(plan));
        return st.finish();
    }
    const std::string slot = st.pick_idle_slot();
    if (slot.empty()) return refuse(s, "no idle slot to deploy to: configure at least two [slots]");
    st.message = plan.strategy == Strategy::blue_green
                     ? fmt::format("deploying {} to {}: blue-green, 100% once healthy{}", e.release, slot,
                                   plan.gates.empty() ? "" : " and promoted")
                     : fmt::format("deploying {} to {}: canary {}, {} per step", e.release, slot,
                                   join_steps(plan.steps), proxy::format_duration(plan.step_duration));
    st.start_rollout(plan.strategy == Strategy::blue_green ? RolloutKind::blue_green : RolloutKind::canary,
                     e.release, slot, std::move(plan));
    return st.finish();
}

Transition on(const event::CandidateHealthy& e, Step& st) {
    const RolloutState& s = st.s;
    if (s.phase != Phase::starting_candidate || s.rollout->start_stage != StartStage::health)
        return ignore(s, "health result ignored: no candidate is waiting for health checks");
    if (stale(e.release, s)) return ignore(s, "health result ignored: stale (" + e.release + ")");
    Rollout& ro = st.r();
    if (st.settings.run_before_activate) {
        ro.start_stage = StartStage::hook;
        st.message = fmt::format("{} is healthy on {}: running before_activate", ro.release, ro.candidate_slot);
        st.act(action::RunBeforeActivate{ro.candidate_slot, ro.release});
        st.log(action::Log::Level::info, st.message);
        return st.finish();
    }
    st.activate();
    return st.finish();
}

Transition on(const event::HookSucceeded& e, Step& st) {
    const RolloutState& s = st.s;
    if (s.phase != Phase::starting_candidate || s.rollout->start_stage != StartStage::hook)
        return ignore(s, "hook result ignored: no before_activate hook is running");
    if (stale(e.release, s)) return ignore(s, "hook result ignored: stale (" + e.release + ")");
    st.activate();
    return st.finish();
}

Transition on(const event::HookFailed& e, Step& st) {
    const RolloutState& s = st.s;
    if (s.phase != Phase::starting_candidate || s.rollout->start_stage != StartStage::hook)
        return ignore(s, "hook result ignored: no before_activate hook is running");
    if (stale(e.release, s)) return ignore(s, "hook result ignored: stale (" + e.release + ")");
    st.roll_back_active("before_activate hook failed: " + e.reason, true, Outcome::rolled_back);
    return st.finish();
}

Transition on(const event::CandidateUnhealthy& e, Step& st) {
    const RolloutState& s = st.s;
    if (!s.rollout_active()) return ignore(s, "health result ignored: no rollout in progress");
    if (stale(e.release, s)) return ignore(s, "health result ignored: stale (" + e.release + ")");
    const bool starting = s.phase == Phase::starting_candidate;
    st.roll_back_active(fmt::format("candidate {}: {}", starting ? "failed to become healthy" : "became unhealthy",
                                    e.reason.empty() ? std::string("health checks failed") : e.reason),
                        true, Outcome::rolled_back);
    return st.finish();
}

Transition on(const event::Tick& e, Step& st) {
    const RolloutState& s = st.s;
    if (s.phase == Phase::promoted) {
        if (s.rollback_window_until && st.now >= *s.rollback_window_until) {
            st.end_rollback_window("rollback window elapsed");
            st.persist();
            st.message = "rollback window elapsed";
            return st.finish();
        }
        return ignore(s, "");
    }
    if ((s.phase == Phase::running || s.phase == Phase::paused) && e.verdict) {
        st.apply_verdict(*e.verdict);
        return st.finish();
    }
    return ignore(s, "");
}

Transition on(const event::Promote& e, Step& st) {
    const RolloutState& s = st.s;
    switch (s.phase) {
    case Phase::idle: return refuse(s, "nothing to promote: no rollout in progress");
    case Phase::rolled_back:
        return refuse(s, fmt::format("nothing to promote: the rollout of {} was {} ({})", s.rollout->release,
                                     s.rollout->outcome == Outcome::aborted ? "aborted" : "rolled back",
                                     s.rollout->reason));
    case Phase::promoted:
        return refuse(s, fmt::format("nothing to promote: {} is already at 100%", s.rollout->release));
    case Phase::starting_candidate:
        return refuse(s, "nothing to promote yet: " + starting_text(*s.rollout));
    case Phase::running:
    case Phase::paused: break;
    }
    Rollout& ro = st.r();
    const std::size_t next = static_cast<std::size_t>(ro.step + 1);
    if (e.full || next >= ro.plan.steps.size()) {
        st.go_full("promoted to 100% by operator");
        return st.finish();
    }
    st.enter_step(next, true); // passes a pause_before gate: the operator said so
    return st.finish();
}

Transition on(const event::Rollback& e, Step& st) {
    const RolloutState& s = st.s;
    const std::string reason = !e.reason.empty() ? e.reason
                               : e.manual        ? std::string("rolled back by operator")
                                                 : std::string("automatic rollback");
    if (e.to) {
        const std::string& target = *e.to;
        if (s.rollout_active())
            return refuse(s, fmt::format("{}: `releasectl rollback` without --to returns all traffic to {} first",
                                         in_progress_text(s), s.live_slot.empty() ? "the live slot" : s.live_slot));
        if (target.empty()) return refuse(s, "rollback --to needs a release id");
        if (!s.live_slot.empty() && target == s.current_release)
            return refuse(s, fmt::format("{} is already live on {}", target, s.live_slot));
        if (s.phase == Phase::promoted && target == s.rollout->live_release) {
            st.roll_back_promoted(reason);
            return st.finish();
        }
        if (auto error = st.restore(target)) return refuse(s, *error);
        return st.finish();
    }
    switch (s.phase) {
    case Phase::starting_candidate:
    case Phase::running:
    case Phase::paused: st.roll_back_active(reason, true, Outcome::rolled_back); return st.finish();
    case Phase::promoted: st.roll_back_promoted(reason); return st.finish();
    case Phase::rolled_back:
        return refuse(s, fmt::format("nothing to roll back: the rollout of {} was already {}; {} is live "
                                     "(`releasectl rollback --to ID` brings back an older release)",
                                     s.rollout->release,
                                     s.rollout->outcome == Outcome::aborted ? "aborted" : "rolled back",
                                     s.current_release.empty() ? std::string("nothing") : s.current_release));
    case Phase::idle: break;
    }
    if (s.previous_release.empty() || s.previous_release == s.current_release)
        return refuse(s, "nothing to roll back to: no previous release");
    if (auto error = st.restore(s.previous_release)) return refuse(s, *error);
    return st.finish();
}

Transition on(const event::Abort&, Step& st) {
    const RolloutState& s = st.s;
    if (s.rollout_active()) {
        st.roll_back_active("aborted by operator", false, Outcome::aborted);
        return st.finish();
    }
    if (s.phase == Phase::promoted)
        return refuse(s, fmt::format("nothing to abort: {} is already at 100%; `releasectl rollback` returns to {}",
                                     s.rollout->release, s.rollout->live_release));
    return refuse(s, "nothing to abort: no rollout in progress");
}

Transition on(const event::Pause&, Step& st) {
    const RolloutState& s = st.s;
    switch (s.phase) {
    case Phase::running: break;
    case Phase::paused:
        return refuse(s, fmt::format("the rollout of {} is already paused ({})", s.rollout->release,
                                     s.rollout->pause_message));
    case Phase::starting_candidate:
        return refuse(s, "nothing to pause yet: " + starting_text(*s.rollout) + "; pause once it takes traffic");
    case Phase::promoted:
        return refuse(s, fmt::format("nothing to pause: {} is already at 100%", s.rollout->release));
    case Phase::idle:
    case Phase::rolled_back: return refuse(s, "nothing to pause: no rollout in progress");
    }
    st.pause(PauseReason::manual, fmt::format("rollout of {} paused by operator at {}; `releasectl resume` continues",
                                              s.rollout->release, s.rollout->progress()));
    return st.finish();
}

Transition on(const event::Resume&, Step& st) {
    const RolloutState& s = st.s;
    switch (s.phase) {
    case Phase::paused: break;
    case Phase::running:
        return refuse(s, fmt::format("nothing to resume: the rollout of {} is running ({})", s.rollout->release,
                                     s.rollout->progress()));
    case Phase::starting_candidate: return refuse(s, "nothing to resume: " + starting_text(*s.rollout));
    case Phase::promoted:
        return refuse(s, fmt::format("nothing to resume: {} is already at 100%", s.rollout->release));
    case Phase::idle:
    case Phase::rolled_back: return refuse(s, "nothing to resume: no rollout in progress");
    }
    Rollout& ro = st.r();
    if (ro.pause_reason == PauseReason::waiting_for_promote)
        return refuse(s, fmt::format("the rollout of {} waits for `releasectl promote` ({}), not `resume`",
                                     ro.release, ro.pause_message));
    // A fresh step clock: the step gathers its evidence again from now.
    st.s.phase = Phase::running;
    ro.step_started_at = st.now;
    ro.step_requests = 0;
    ro.last_verdict.reset();
    ro.paused_at.reset();
    ro.pause_message.clear();
    st.message = fmt::format("rollout of {} resumed at {}", ro.release, ro.progress());
    st.persist();
    st.notify("resumed", st.message);
    st.log(action::Log::Level::info, st.message);
    return st.finish();
}

Transition on(const event::RollbackWindowElapsed&, Step& st) {
    if (st.s.phase != Phase::promoted) return ignore(st.s, "no rollback window is open");
    st.end_rollback_window("rollback window elapsed");
    st.persist();
    st.message = "rollback window elapsed";
    return st.finish();
}

Transition on(const event::DaemonRestarted&, Step& st) {
    RolloutState& s = st.s;
    // The persisted route table first: users get a known route before anything else.
    std::string candidate;
    if (s.rollout_active() && s.rollout->percent() > 0) candidate = s.rollout->candidate_slot;
    st.actions.emplace_back(action::PublishWeights{s.weights, s.live_slot, candidate});
    if (!s.current_release.empty()) st.act(action::SetCurrent{s.current_release});
    if (!s.previous_release.empty()) st.act(action::SetPrevious{s.previous_release});
    if (!s.live_slot.empty()) {
        auto bound = s.slot_release.find(s.live_slot);
        st.act(action::StartSlot{s.live_slot, bound == s.slot_release.end() ? s.current_release : bound->second,
                                 true, false});
    }
    st.message = "restarted: " + std::string(to_string(s.phase));
    switch (s.phase) {
    case Phase::idle:
    case Phase::rolled_back: break;
    case Phase::promoted:
        if (s.rollback_window_until && st.now >= *s.rollback_window_until) {
            st.end_rollback_window("rollback window elapsed while the daemon was down");
        } else {
            st.act(action::StartSlot{s.kept_slot, s.rollout->live_release, true, false});
        }
        break;
    case Phase::starting_candidate:
    case Phase::running:
    case Phase::paused: {
        Rollout& ro = st.r();
        if (st.policy().on_crash == RolloutConfig::OnCrash::rollback) {
            st.roll_back_active("the daemon restarted during the rollout (on_crash = rollback)", false,
                                Outcome::rolled_back);
            return st.finish();
        }
        if (s.phase == Phase::starting_candidate) {
            ro.start_stage = StartStage::health; // health checks (and the hook) run again
            st.act(action::StartSlot{ro.candidate_slot, ro.release, false, true});
        } else {
            st.act(action::StartSlot{ro.candidate_slot, ro.release, true, true});
            if (s.phase == Phase::running) {
                ro.step_started_at = st.now; // the window's counters died with the old process
                ro.step_requests = 0;
                ro.last_verdict.reset();
            }
        }
        st.message = fmt::format("resuming the rollout of {} at {} after a restart", ro.release, ro.progress());
        st.log(action::Log::Level::warn, st.message);
        break;
    }
    }
    st.persist();
    return st.finish();
}

} // namespace

Transition transition(const RolloutState& state, const Event& event, TimePoint now,
                      const MachineSettings& settings) {
    Step step(state, now, settings);
    return std::visit([&](const auto& e) { return on(e, step); }, event);
}

} // namespace releasectl
