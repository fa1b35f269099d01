#include "controller/controller.hpp"

#include "controller/analysis.hpp"
#include "controller/notifier.hpp"
#include "controller/prometheus_source.hpp"
#include "controller/route_builder.hpp"
#include "controller/rollout_state_json.hpp"
#include "controller/supervisor.hpp"

#include "proxy/proxy_server.hpp"
#include "releases/bad_marks.hpp"
#include "releases/catalog.hpp"
#include "releases/create_release.hpp"
#include "releases/layout.hpp"
#include "releases/symlinks.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <optional>
#include <vector>

namespace releasectl {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

std::string state_path(const Config& config) { return config.state_dir() + "/state.json"; }

json::object error_body(std::string message) {
    json::object o;
    o["ok"] = false;
    o["error"] = std::move(message);
    return o;
}

std::optional<json::object> parse_object(const std::string& body, std::string* error) {
    if (body.empty()) return json::object{};
    boost::system::error_code ec;
    auto value = json::parse(body, ec);
    if (ec || !value.is_object()) {
        *error = "request body must be a JSON object";
        return std::nullopt;
    }
    return value.as_object();
}

// A small fixed set of label values for releasectl_rollbacks_total{reason}.
std::string rollback_reason_label(const std::string& why) {
    if (why.find("failing check") != std::string::npos) return "analysis";
    if (why.find("operator") != std::string::npos) return "manual";
    if (why.find("before_activate") != std::string::npos) return "hook";
    if (why.find("restarted") != std::string::npos) return "restart";
    if (why.find("health") != std::string::npos || why.find("start") != std::string::npos) return "unhealthy";
    return "other";
}

} // namespace

Controller::Controller(asio::io_context& io, Config config, proxy::ProxyServer& proxy, Supervisor& supervisor,
                       Notifier& notifier)
    : io_(io), config_(std::move(config)), settings_(MachineSettings::from(config_)), proxy_(proxy),
      supervisor_(supervisor), notifier_(notifier), tick_timer_(io) {}

Controller::~Controller() { *alive_ = false; }

TimePoint Controller::now() const {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

RolloutState Controller::load_initial_state(const Config& config) {
    bool missing = false;
    auto loaded = load_state_file(state_path(config), &missing);
    RolloutState state;
    if (loaded.state) {
        state = *loaded.state;
    } else {
        if (!missing) spdlog::error("state file {} is unreadable ({}); starting from [weights]", state_path(config), loaded.error);
        state = RolloutState::initial(config);
    }
    // Slots added to the config since the state was written start empty.
    for (const auto& slot : config.slots) {
        state.slot_release.try_emplace(slot.name, "");
        state.weights.try_emplace(slot.name, 0u);
    }
    // The symlinks on disk say what each slot runs; state.json says where
    // traffic goes. A crash between a flip and the persist leaves the link
    // newer: trust the link for bindings.
    auto bindings = releases::slot_bindings(config.root);
    for (const auto& [slot, release] : bindings)
        if (state.slot_release.count(slot)) state.slot_release[slot] = release;
    if (state.current_release.empty())
        if (auto current = releases::current_release(config.root)) state.current_release = *current;
    if (state.previous_release.empty())
        if (auto previous = releases::previous_release(config.root)) state.previous_release = *previous;
    return state;
}

proxy::RouteTable Controller::route_table_for(const Config& config, const RolloutState& state) {
    std::string candidate;
    if (state.rollout_active() && state.rollout && state.rollout->percent() > 0) candidate = state.rollout->candidate_slot;
    return build_route_table(config, state.weights, state.live_slot, candidate, state.slot_release);
}

void Controller::start(RolloutState initial) {
    state_ = std::move(initial);
    apply(event::DaemonRestarted{});
    reset_windows();
    asio::co_spawn(io_, tick_loop(), asio::detached);
}

void Controller::reload(Config fresh) {
    // An edited [weights] is the operator's manual split, honoured only while
    // no rollout runs (during one the controller owns the weights).
    bool weights_changed = fresh.weights != config_.weights;
    config_ = std::move(fresh);
    settings_ = MachineSettings::from(config_);
    supervisor_.reconfigure(config_);
    notifier_.reconfigure(config_.notify);
    if (weights_changed && !state_.rollout_active()) {
        for (auto& [slot, weight] : state_.weights) {
            auto it = config_.weights.find(slot);
            weight = it == config_.weights.end() ? 0u : it->second;
        }
        unsigned best = 0;
        for (const auto& [slot, weight] : state_.weights)
            if (weight > best) {
                best = weight;
                state_.live_slot = slot;
            }
        auto result = save_state_file(state_path(config_), state_);
        if (!result) spdlog::error("cannot persist state: {}", result.error);
    } else if (weights_changed) {
        spdlog::warn("[weights] changed but a rollout is in progress: the rollout keeps control of the weights");
    }
    proxy_.publish(route_table_for(config_, state_));
}

bool Controller::live_slot_healthy() const {
    if (state_.live_slot.empty()) return false;
    auto health = supervisor_.health(state_.live_slot);
    return health == SlotHealth::healthy;
}

// ------------------------------------------------------------------ machine

Transition Controller::apply(const Event& event) {
    Transition t = transition(state_, event, now(), settings_);
    if (t.applied()) {
        bool rollout_changed = !state_.rollout || !t.state.rollout || state_.rollout->release != t.state.rollout->release ||
                               state_.rollout->step != t.state.rollout->step;
        const auto bound_before = state_.slot_release;
        state_ = t.state;
        note_rebound_slots(bound_before);
        if (rollout_changed) {
            // A new step is judged on its own traffic only, and its checks are
            // aligned to its start: the first check comes one full
            // check_interval after the weights changed.
            reset_windows();
            realign_ticks_ = true;
            tick_timer_.cancel();
        }
        for (const auto& action : t.actions) perform(action);
    } else if (t.result == Transition::Result::ignored) {
        spdlog::debug("{} ignored: {}", event_name(event), t.message);
    }
    return t;
}

void Controller::perform(const Action& any) {
    std::visit(
        [&](const auto& a) {
            using A = std::decay_t<decltype(a)>;
            if constexpr (std::is_same_v<A, action::PublishWeights>) {
                auto table = build_route_table(config_, a.weights, a.live, a.candidate, state_.slot_release);
                proxy_.publish(table);
                std::string summary;
                for (const auto& [slot, weight] : a.weights) summary += fmt::format("{}{}={}%", summary.empty() ? "" : " ", slot, weight);
                spdlog::info("route table: {} (live {}{})", summary, a.live.empty() ? "-" : a.live,
                             a.candidate.empty() ? "" : ", candidate " + a.candidate);
            } else if constexpr (std::is_same_v<A, action::StartSlot>) {
                asio::co_spawn(io_, start_slot(a), asio::detached);
            } else if constexpr (std::is_same_v<A, action::StopSlot>) {
                asio::co_spawn(io_, stop_slot(a), asio::detached);
            } else if constexpr (std::is_same_v<A, action::RunBeforeActivate>) {
                asio::co_spawn(io_, run_hook(a), asio::detached);
            } else if constexpr (std::is_same_v<A, action::SetCurrent>) {
                auto status = releases::set_current(config_.root, a.release);
                if (!status) spdlog::error("cannot point current at {}: {}", a.release, status.error);
            } else if constexpr (std::is_same_v<A, action::SetPrevious>) {
                auto status = releases::set_previous(config_.root, a.release);
                if (!status) spdlog::error("cannot point previous at {}: {}", a.release, status.error);
            } else if constexpr (std::is_same_v<A, action::MarkBad>) {
                auto status = releases::mark_bad(config_.root, a.release, "releasectl", a.reason);
                if (!status) spdlog::error("cannot mark {} bad: {}", a.release, status.error);
            } else if constexpr (std::is_same_v<A, action::Notify>) {
                if (a.event == "rolled_back") {
                    std::string why;
                    if (auto* r = a.payload.if_contains("reason"); r && r->is_string()) why = std::string(r->as_string());
                    ++rollbacks_by_reason_[rollback_reason_label(why)];
                }
                notifier_.send(a.event, a.payload);
            } else if constexpr (std::is_same_v<A, action::PersistState>) {
                auto result = save_state_file(state_path(config_), state_);
                if (!result) spdlog::error("cannot persist state: {}", result.error);
            } else if constexpr (std::is_same_v<A, action::RecordHistory>) {
                spdlog::info("rollout of {} finished: {} ({})", a.entry.release, to_string(a.entry.outcome), a.entry.reason);
                if (a.entry.outcome == Outcome::rolled_back) {
                    // Retention runs after a rollout ends, never during one.
                }
                auto removed = releases::retention(config_.root, config_.releases.keep);
                (void)removed;
            } else if constexpr (std::is_same_v<A, action::Log>) {
                switch (a.level) {
                case action::Log::Level::info: spdlog::info("{}", a.message); break;
                case action::Log::Level::warn: spdlog::warn("{}", a.message); break;
                case action::Log::Level::error: spdlog::error("{}", a.message); break;
                }
            }
        },
        any);
}

asio::awaitable<void> Controller::start_slot(action::StartSlot start) {
    auto alive = alive_;
    if (stopping_) co_return;
    auto bound = releases::slot_release(config_.root, start.slot);
    auto status = supervisor_.status(start.slot);
    bool already = start.ensure_running && bound && *bound == start.release &&
                   status.health == SlotHealth::healthy && status.release_id == start.release;
    StartResult result{true, {}};
    if (!already) {
        if (!start.release.empty() && (!bound || *bound != start.release)) {
            auto linked = releases::bind_slot(config_.root, start.slot, start.release);
            if (!linked) result = {false, "cannot bind slot " + start.slot + ": " + linked.error};
        }
        if (result.ok) {
            spdlog::info("starting slot {} with release {}", start.slot, start.release.empty() ? "-" : start.release);
            result = co_await supervisor_.start_slot(start.slot);
        }
    }
    if (!*alive || stopping_) co_return;
    if (!start.report_health) {
        if (!result.ok) spdlog::error("slot {} did not start: {}", start.slot, result.error);
        co_return;
    }
    if (result.ok) apply(event::CandidateHealthy{start.release});
    else apply(event::CandidateUnhealthy{start.release, result.error});
}

asio::awaitable<void> Controller::stop_slot(action::StopSlot stop) {
    auto alive = alive_;
    // Drain: the slot is out of the route table already; let its in-flight
    // requests finish (bounded by drain_timeout) before its app goes away.
    int index = config_.slot_index(stop.slot);
    auto deadline = std::chrono::steady_clock::now() + config_.proxy.timeouts.drain;
    asio::steady_timer timer(io_);
    while (index >= 0 && std::chrono::steady_clock::now() < deadline) {
        auto stats = proxy_.slot_stats();
        if (static_cast<std::size_t>(index) >= stats.size() || stats[static_cast<std::size_t>(index)].in_flight == 0) break;
        timer.expires_after(std::chrono::milliseconds(50));
        co_await timer.async_wait(nothrow_awaitable);
    }
    if (!*alive) co_return;
    spdlog::info("stopping slot {} ({})", stop.slot, stop.reason);
    co_await supervisor_.stop_slot(stop.slot);
}

asio::awaitable<void> Controller::run_hook(action::RunBeforeActivate hook) {
    auto alive = alive_;
    auto dir = (fs::path(config_.root) / "releases" / hook.release).string();
    spdlog::info("running before_activate for {} in {}", hook.release, dir);
    auto result = co_await supervisor_.run_before_activate(hook.slot, dir);
    if (!*alive || stopping_) co_return;
    if (result.ok) apply(event::HookSucceeded{hook.release});
    else apply(event::HookFailed{hook.release, result.error});
}

// A slot got a new release (a rollout starts on it while it takes no traffic):
// remember its counters, the zero of releasectl_requests_total{release=new}.
void Controller::note_rebound_slots(const std::map<std::string, std::string>& bound_before) {
    std::optional<std::vector<proxy::SlotStats>> stats;
    for (const auto& [slot, release] : state_.slot_release) {
        auto before = bound_before.find(slot);
        if (before != bound_before.end() && before->second == release) continue;
        if (!stats) stats = proxy_.slot_stats();
        int index = config_.slot_index(slot);
        if (index >= 0 && static_cast<std::size_t>(index) < stats->size())
            release_baselines_[slot] = (*stats)[static_cast<std::size_t>(index)].status_class;
    }
}

// ------------------------------------------------------------------ analysis

void Controller::reset_windows() {
    auto stats = proxy_.slot_stats();
    last_snapshot_.clear();
    for (std::size_t i = 0; i < config_.slots.size() && i < stats.size(); ++i)
        last_snapshot_[config_.slots[i].name] = stats[i];
}

std::optional<Verdict> Controller::judge_window() {
    auto stats = proxy_.slot_stats();
    std::map<std::string, proxy::SlotStats> windows;
    for (std::size_t i = 0; i < config_.slots.size() && i < stats.size(); ++i) {
        const auto& name = config_.slots[i].name;
        windows[name] = stats[i].minus(last_snapshot_[name]);
        last_snapshot_[name] = stats[i];
    }
    if (!state_.rollout_active() || !state_.rollout || state_.rollout->candidate_slot.empty()) return std::nullopt;
    const auto& candidate = windows[state_.rollout->candidate_slot];
    const proxy::SlotStats* baseline = nullptr;
    if (!state_.rollout->live_slot.empty() && windows.count(state_.rollout->live_slot))
        baseline = &windows[state_.rollout->live_slot];
    return judge(candidate, baseline, config_.rollout);
}

asio::awaitable<void> Controller::tick_loop() {
    auto alive = alive_;
    while (*alive && !stopping_) {
        tick_timer_.expires_after(config_.rollout.check_interval);
        auto [ec] = co_await tick_timer_.async_wait(nothrow_awaitable);
        if (!*alive || stopping_) break;
        if (ec == asio::error::operation_aborted && realign_ticks_) {
            realign_ticks_ = false;
            continue;
        }
        if (ec) break;
        auto verdict = judge_window();
        if (verdict && config_.analysis.source == "prometheus") {
            // Same window, judged from Prometheus (a fleet's numbers). The
            // rollout may move on while we wait: then this verdict is stale.
            std::string release = state_.rollout->release, candidate = state_.rollout->candidate_slot,
                        live = state_.rollout->live_slot;
            int step = state_.rollout->step;
            std::string why;
            auto numbers = co_await query_window(io_, config_.analysis, candidate, config_.rollout.check_interval, &why);
            std::optional<WindowNumbers> baseline;
            if (numbers && !live.empty() && (config_.rollout.max_error_rate_increase || config_.rollout.max_p95_ratio)) {
                std::string baseline_why;
                baseline = co_await query_window(io_, config_.analysis, live, config_.rollout.check_interval, &baseline_why);
            }
            if (!*alive || stopping_) break;
            if (!state_.rollout || state_.rollout->release != release || state_.rollout->step != step) continue;
            if (numbers) {
                verdict = judge(*numbers, baseline, config_.rollout);
            } else {
                Verdict unknown;
                unknown.kind = VerdictKind::inconclusive;
                unknown.reasons.push_back(why);
                verdict = unknown;
                spdlog::warn("analysis: {}", why);
            }
        }
        if (verdict) {
            last_verdict_ = verdict;
            const auto& ro = *state_.rollout;
            spdlog::info("check {} at {}: {}", ro.release, ro.progress(), verdict->summary());
        }
        auto t = apply(event::Tick{verdict});
        if (t.applied() && !t.message.empty() && t.message != "tick") spdlog::debug("tick: {}", t.message);
    }
}

// ------------------------------------------------------------------ admin API

AdminReply Controller::from_transition(const Transition& t, unsigned refused_status) {
    json::object o;
    o["ok"] = t.applied();
    o["message"] = t.message;
    if (t.refused()) {
        o["error"] = t.message;
        return {refused_status, o};
    }
    o["state"] = status_json();
    return {200, o};
}

json::value Controller::slots_json() const {
    json::array slots;
    auto stats = proxy_.slot_stats();
    auto table = proxy_.route_table();
    for (std::size_t i = 0; i < config_.slots.size(); ++i) {
        const auto& slot = config_.slots[i];
        json::object o;
        o["name"] = slot.name;
        o["upstream"] = slot.upstream.to_string();
        auto release = state_.slot_release.find(slot.name);
        o["release"] = release == state_.slot_release.end() ? "" : release->second;
        o["weight"] = i < table.slots.size() ? table.slots[i].weight : 0;
        auto status = supervisor_.status(slot.name);
        o["health"] = std::string(to_string(status.health));
        if (status.pid) o["pid"] = *status.pid;
        if (!status.last_error.empty()) o["last_error"] = status.last_error;
        o["restarts"] = status.restarts_in_window;
        if (i < stats.size()) {
            o["requests"] = stats[i].requests();
            o["errors"] = stats[i].errors();
            o["in_flight"] = stats[i].in_flight;
        }
        o["live"] = slot.name == state_.live_slot;
        slots.push_back(std::move(o));
    }
    return slots;
}

json::value Controller::status_json() const {
    json::object o;
    o["phase"] = to_string(state_.phase);
    o["live_slot"] = state_.live_slot;
    o["current"] = state_.current_release;
    o["previous"] = state_.previous_release;
    o["slots"] = slots_json();
    json::object limits;
    limits["max_error_rate"] = config_.rollout.max_error_rate;
    limits["max_p95_seconds"] = static_cast<double>(config_.rollout.max_p95.count()) / 1000.0;
    limits["min_requests"] = config_.rollout.min_requests;
    limits["check_interval_seconds"] = static_cast<double>(config_.rollout.check_interval.count()) / 1000.0;
    limits["failure_threshold"] = config_.rollout.failure_threshold;
    o["limits"] = limits;
    if (state_.rollout) {
        json::object r = to_json(*state_.rollout).as_object();
        r["progress"] = state_.rollout->progress();
        r["percent"] = state_.rollout->percent();
        r["steps_total"] = state_.rollout->plan.steps.size();
        if (state_.rollout_active() && state_.rollout->step >= 0) {
            auto elapsed = now() - state_.rollout->step_started_at;
            auto left = state_.rollout->plan.step_duration - std::chrono::duration_cast<std::chrono::milliseconds>(elapsed);
            r["step_time_left_seconds"] = std::max<double>(0.0, static_cast<double>(left.count()) / 1000.0);
        }
        o["rollout"] = std::move(r);
    }
    if (last_verdict_) o["last_verdict"] = to_json(*last_verdict_);
    if (!state_.kept_slot.empty()) o["kept_slot"] = state_.kept_slot;
    o["rollout_active"] = state_.rollout_active();
    o["revision"] = state_.revision;
    return o;
}

AdminReply Controller::deploy(const json::object& request) {
    std::string release;
    if (auto* id = request.if_contains("release"); id && id->is_string()) release = std::string(id->as_string());
    if (auto* path = request.if_contains("path"); path && path->is_string()) {
        if (state_.rollout_active()) {
            Transition probe = transition(state_, event::DeployRequested{"probe"}, now(), settings_);
            if (probe.refused()) return {409, error_body(probe.message)};
        }
        releases::CreateOptions options;
        if (!release.empty()) options.id = release;
        options.shared = config_.releases.shared;
        auto created = releases::create_release(config_.root, std::string(path->as_string()), options);
        if (!created) return {400, error_body(created.error)};
        release = created->id;
        spdlog::info("created release {} from {}", release, std::string(path->as_string()));
    }
    if (release.empty()) return {400, error_body("deploy needs a path or --release ID")};
    if (!fs::is_directory(fs::path(config_.root) / "releases" / release))
        return {404, error_body("unknown release '" + release + "' (see `releasectl releases`)")};
    if (auto mark = releases::bad_mark(config_.root, release); mark && !(request.if_contains("force") && request.at("force").is_bool() && request.at("force").as_bool()))
        return {409, error_body("release " + release + " is marked bad (" + mark->why + "); pass --force to deploy it anyway")};
    event::DeployRequested deploy{release};
    if (auto* s = request.if_contains("strategy"); s && s->is_string()) {
        auto strategy = strategy_from_string(std::string(s->as_string()));
        if (!strategy) return {400, error_body("unknown strategy '" + std::string(s->as_string()) + "' (canary or blue-green)")};
        deploy.strategy = strategy;
    }
    if (auto* s = request.if_contains("steps"); s && s->is_array()) {
        std::vector<unsigned> steps;
        for (const auto& v : s->as_array()) {
            if (!v.is_int64() || v.as_int64() < 0) return {400, error_body("steps must be whole percentages")};
            steps.push_back(static_cast<unsigned>(v.as_int64()));
        }
        if (auto problem = validate_steps(steps)) return {400, error_body(*problem)};
        deploy.steps = steps;
    }
    if (auto* s = request.if_contains("step_duration"); s && s->is_string()) {
        auto d = proxy::parse_duration(std::string(s->as_string()));
        if (!d) return {400, error_body("invalid step duration '" + std::string(s->as_string()) + "'")};
        deploy.step_duration = *d;
    }
    auto t = apply(deploy);
    auto reply = from_transition(t);
    if (reply.body.is_object()) reply.body.as_object()["release"] = release;
    return reply;
}

asio::awaitable<AdminReply> Controller::handle(std::string method, std::string target, std::string body) {
    std::string error;
    auto request = parse_object(body, &error);
    if (!request) co_return AdminReply{400, error_body(error)};
    auto path = target.substr(0, target.find('?'));
    bool post = method == "POST";
    if (method == "GET" && (path == "/v1/status" || path == "/v1/state")) {
        json::object o;
        o["ok"] = true;
        o["state"] = status_json();
        co_return AdminReply{200, o};
    }
    if (method == "GET" && path == "/v1/history") {
        json::array history;
        for (const auto& r : state_.history) history.push_back(to_json(r));
        json::object o;
        o["ok"] = true;
        o["history"] = std::move(history);
        co_return AdminReply{200, o};
    }
    if (method == "GET" && path == "/v1/releases") {
        json::array list;
        for (const auto& r : releases::list_releases(config_.root)) {
            json::object o;
            o["id"] = r.id;
            o["created"] = std::chrono::duration_cast<std::chrono::seconds>(r.created.time_since_epoch()).count();
            o["size_bytes"] = r.size_bytes;
            json::array slots;
            for (const auto& s : r.slots) slots.push_back(json::value(s));
            o["slots"] = std::move(slots);
            o["current"] = r.is_current;
            o["previous"] = r.is_previous;
            if (r.bad) o["bad"] = r.bad->why;
            list.push_back(std::move(o));
        }
        json::object o;
        o["ok"] = true;
        o["releases"] = std::move(list);
        co_return AdminReply{200, o};
    }
    if (post && path == "/v1/deploy") co_return deploy(*request);
    if (post && path == "/v1/promote") {
        bool full = request->if_contains("full") && request->at("full").is_bool() && request->at("full").as_bool();
        co_return from_transition(apply(event::Promote{full}));
    }
    if (post && path == "/v1/rollback") {
        event::Rollback rollback;
        rollback.manual = true;
        rollback.reason = "operator rollback";
        if (auto* to = request->if_contains("to"); to && to->is_string()) {
            std::string id(to->as_string());
            if (!fs::is_directory(fs::path(config_.root) / "releases" / id))
                co_return AdminReply{404, error_body("unknown release '" + id + "' (see `releasectl releases`)")};
            rollback.to = id;
        }
        co_return from_transition(apply(rollback));
    }
    if (post && path == "/v1/abort") co_return from_transition(apply(event::Abort{}));
    if (post && path == "/v1/pause") co_return from_transition(apply(event::Pause{}));
    if (post && path == "/v1/resume") co_return from_transition(apply(event::Resume{}));
    co_return AdminReply{404, error_body("no such endpoint: " + method + " " + path)};
}

asio::awaitable<void> Controller::shutdown() {
    stopping_ = true;
    tick_timer_.cancel();
    auto result = save_state_file(state_path(config_), state_);
    if (!result) spdlog::error("cannot persist state: {}", result.error);
    co_await supervisor_.stop_all();
}

} // namespace releasectl
