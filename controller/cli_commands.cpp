// Client subcommands: each is a request to the daemon's admin API plus the
// rendering of its answer. Exit codes: 0 done, 1 failed / refused / rolled
// back, 2 usage error, 3 daemon unreachable.
#include "controller/cli_commands.hpp"

#include "controller/analysis.hpp"

#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <unistd.h>

namespace releasectl {
namespace json = boost::json;

namespace {

std::string str(const json::value* v) {
    if (!v) return "";
    if (v->is_string()) return std::string(v->as_string());
    if (v->is_int64()) return std::to_string(v->as_int64());
    if (v->is_uint64()) return std::to_string(v->as_uint64());
    if (v->is_double()) return std::to_string(v->as_double());
    if (v->is_bool()) return v->as_bool() ? "true" : "false";
    return "";
}
std::string str(const json::object& o, const char* key) { return str(o.if_contains(key)); }
double num(const json::object& o, const char* key) {
    auto* v = o.if_contains(key);
    if (!v) return 0;
    if (v->is_double()) return v->as_double();
    if (v->is_int64()) return static_cast<double>(v->as_int64());
    if (v->is_uint64()) return static_cast<double>(v->as_uint64());
    return 0;
}
const json::object* obj(const json::object& o, const char* key) {
    auto* v = o.if_contains(key);
    return v && v->is_object() ? &v->as_object() : nullptr;
}

int unreachable(const AdminResponse& r) {
    std::fprintf(stderr, "releasectl: %s\n  (is `releasectl serve` running? find it with --config FILE, --socket PATH or RELEASECTL_SOCKET)\n",
                 r.error.c_str());
    return 3;
}

// The answer's "error" or "message", and the exit code for it.
int report(const AdminResponse& r, bool quiet_success = false) {
    if (!r.reached) return unreachable(r);
    const json::object* o = r.body.is_object() ? &r.body.as_object() : nullptr;
    bool ok = r.status == 200 && o && num(*o, "ok") != 0;
    if (o && o->if_contains("ok") && o->at("ok").is_bool()) ok = r.status == 200 && o->at("ok").as_bool();
    if (!ok) {
        std::fprintf(stderr, "releasectl: %s\n", o ? str(*o, "error").c_str() : "unexpected answer from the daemon");
        return r.status == 400 || r.status == 404 ? 2 : 1;
    }
    if (!quiet_success && o && !str(*o, "message").empty()) std::printf("%s\n", str(*o, "message").c_str());
    return 0;
}

std::string bar(double percent) {
    int filled = static_cast<int>(percent / 5.0 + 0.5);
    std::string out = "[";
    for (int i = 0; i < 20; ++i) out += i < filled ? "#" : ".";
    return out + "]";
}

std::string clock_text(double seconds) {
    long s = static_cast<long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
    return buf;
}

// Lines describing the daemon's state; used by status and the deploy view.
std::vector<std::string> render_status(const json::object& state) {
    std::vector<std::string> lines;
    char buf[512];
    std::snprintf(buf, sizeof buf, "phase %-18s live %-6s current %s  previous %s", str(state, "phase").c_str(),
                  str(state, "live_slot").empty() ? "-" : str(state, "live_slot").c_str(),
                  str(state, "current").empty() ? "-" : str(state, "current").c_str(),
                  str(state, "previous").empty() ? "-" : str(state, "previous").c_str());
    lines.push_back(buf);
    lines.push_back("  slot     release               weight  health      requests    5xx");
    if (auto* slots = state.if_contains("slots"); slots && slots->is_array()) {
        for (const auto& s : slots->as_array()) {
            const auto& o = s.as_object();
            std::snprintf(buf, sizeof buf, "  %-8s %-21s %5.0f%%  %-10s %9.0f %6.0f%s", str(o, "name").c_str(),
                          str(o, "release").empty() ? "-" : str(o, "release").c_str(), num(o, "weight"),
                          str(o, "health").c_str(), num(o, "requests"), num(o, "errors"),
                          o.if_contains("live") && o.at("live").as_bool() ? "  (live)" : "");
            lines.push_back(buf);
        }
    }
    const json::object* rollout = obj(state, "rollout");
    const json::object* limits = obj(state, "limits");
    if (rollout) {
        bool active = state.if_contains("rollout_active") && state.at("rollout_active").as_bool();
        std::snprintf(buf, sizeof buf, "rollout %s %s: %s %s %s", str(*rollout, "release").c_str(),
                      str(*rollout, "kind").c_str(), str(*rollout, "progress").c_str(),
                      bar(num(*rollout, "percent")).c_str(),
                      active ? (rollout->if_contains("step_time_left_seconds")
                                    ? ("step ends in " + clock_text(num(*rollout, "step_time_left_seconds"))).c_str()
                                    : "")
                             : ("finished: " + str(*rollout, "outcome")).c_str());
        lines.push_back(buf);
        if (!active && !str(*rollout, "reason").empty()) lines.push_back("  reason: " + str(*rollout, "reason"));
    }
    if (const json::object* verdict = obj(state, "last_verdict"); verdict && limits) {
        std::snprintf(buf, sizeof buf, "  candidate window: %.0f requests (min %.0f)  error rate %s (max %s)  p95 %s (max %s)  -> %s",
                      num(*verdict, "requests"), num(*limits, "min_requests"),
                      format_percent(num(*verdict, "error_rate")).c_str(),
                      format_percent(num(*limits, "max_error_rate")).c_str(),
                      format_seconds(num(*verdict, "p95_seconds")).c_str(),
                      format_seconds(num(*limits, "max_p95_seconds")).c_str(), str(*verdict, "kind").c_str());
        lines.push_back(buf);
    }
    return lines;
}

} // namespace

int cmd_status(const AdminClient& client, bool watch, bool as_json) {
    bool tty = ::isatty(STDOUT_FILENO);
    std::size_t drawn = 0;
    for (;;) {
        auto r = client.get("/v1/status");
        if (!r.reached) return unreachable(r);
        if (r.status != 200 || !r.body.is_object()) return report(r);
        const auto& state = r.body.as_object().at("state").as_object();
        if (as_json) {
            std::printf("%s\n", json::serialize(state).c_str());
        } else {
            auto lines = render_status(state);
            if (watch && tty && drawn) std::printf("\033[%zuA", drawn);
            for (const auto& line : lines) std::printf("%s\033[K\n", line.c_str());
            drawn = lines.size();
            if (watch && !tty) std::printf("--\n");
        }
        std::fflush(stdout);
        if (!watch) return 0;
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
}

int cmd_simple(const AdminClient& client, const std::string& path, const std::string& body) {
    return report(client.post(path, body));
}

int cmd_history(const AdminClient& client, bool as_json) {
    auto r = client.get("/v1/history");
    if (!r.reached || r.status != 200) return report(r);
    const auto& history = r.body.as_object().at("history").as_array();
    if (as_json) {
        std::printf("%s\n", json::serialize(history).c_str());
        return 0;
    }
    if (history.empty()) std::printf("no rollouts yet\n");
    for (const auto& entry : history) {
        const auto& o = entry.as_object();
        std::printf("%s  %-10s %-12s %s\n", str(o, "release").c_str(), str(o, "kind").c_str(), str(o, "outcome").c_str(),
                    str(o, "reason").c_str());
        if (auto* steps = o.if_contains("step_records"); steps && steps->is_array()) {
            for (const auto& s : steps->as_array()) {
                const auto& step = s.as_object();
                double requests = num(step, "requests");
                std::printf("    %3.0f%%  %8.0f requests  %6.0f errors (%s)  worst p95 %s  %s\n", num(step, "percent"),
                            requests, num(step, "errors"),
                            format_percent(requests > 0 ? num(step, "errors") / requests : 0).c_str(),
                            format_seconds(num(step, "max_p95_seconds")).c_str(), str(step, "outcome").c_str());
            }
        }
    }
    return 0;
}

int cmd_releases_remote(const AdminClient& client, bool as_json) {
    auto r = client.get("/v1/releases");
    if (!r.reached || r.status != 200) return report(r);
    const auto& list = r.body.as_object().at("releases").as_array();
    if (as_json) {
        std::printf("%s\n", json::serialize(list).c_str());
        return 0;
    }
    std::printf("%-22s %-20s %10s  %-12s %s\n", "release", "created (UTC)", "size", "slot", "marks");
    for (const auto& entry : list) {
        const auto& o = entry.as_object();
        std::time_t created = static_cast<std::time_t>(num(o, "created"));
        char when[32];
        std::tm tm{};
        gmtime_r(&created, &tm);
        std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        std::string slots;
        for (const auto& s : o.at("slots").as_array()) slots += (slots.empty() ? "" : ",") + std::string(s.as_string());
        std::string marks;
        if (o.at("current").as_bool()) marks += "current ";
        if (o.at("previous").as_bool()) marks += "previous ";
        if (o.if_contains("bad")) marks += "BAD (" + str(o, "bad") + ")";
        std::printf("%-22s %-20s %9.1fM  %-12s %s\n", str(o, "id").c_str(), when, num(o, "size_bytes") / 1048576.0,
                    slots.empty() ? "-" : slots.c_str(), marks.c_str());
    }
    return 0;
}

int cmd_deploy(const AdminClient& client, const DeployOptions& options) {
    json::object request;
    if (!options.path.empty()) request["path"] = options.path;
    if (!options.release.empty()) request["release"] = options.release;
    if (!options.strategy.empty()) request["strategy"] = options.strategy;
    if (!options.steps.empty()) {
        json::array steps;
        for (unsigned s : options.steps) steps.push_back(s);
        request["steps"] = steps;
    }
    if (!options.step_duration.empty()) request["step_duration"] = options.step_duration;
    if (options.force) request["force"] = true;
    auto r = client.post("/v1/deploy", json::serialize(request));
    int code = report(r);
    if (code != 0 || options.detach) return code;
    std::string release = str(r.body.as_object(), "release");

    // Follow the rollout to its end: a live view on a terminal, one line per
    // event otherwise.
    bool tty = ::isatty(STDOUT_FILENO);
    std::size_t drawn = 0;
    std::string last_event;
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 500 : 250));
        auto s = client.get("/v1/status");
        if (!s.reached) return unreachable(s);
        const auto& state = s.body.as_object().at("state").as_object();
        const json::object* rollout = obj(state, "rollout");
        if (!rollout || str(*rollout, "release") != release) continue;
        std::string outcome = str(*rollout, "outcome");
        if (tty) {
            auto lines = render_status(state);
            if (drawn) std::printf("\033[%zuA", drawn);
            for (const auto& line : lines) std::printf("%s\033[K\n", line.c_str());
            drawn = lines.size();
        } else {
            std::string event = str(state, "phase") + " " + str(*rollout, "progress");
            if (event != last_event) {
                std::string verdict;
                if (const json::object* v = obj(state, "last_verdict"))
                    verdict = "  last check: " + str(*v, "kind") + ", " + std::to_string(static_cast<long>(num(*v, "requests"))) +
                              " requests, error rate " + format_percent(num(*v, "error_rate")) + ", p95 " +
                              format_seconds(num(*v, "p95_seconds"));
                std::printf("%s: %s%s\n", release.c_str(), event.c_str(), verdict.c_str());
                last_event = event;
            }
        }
        std::fflush(stdout);
        if (outcome == "in_progress") continue;
        if (outcome == "promoted") {
            std::printf("%s promoted: 100%% of traffic, current -> %s\n", release.c_str(), release.c_str());
            return 0;
        }
        std::printf("%s %s: %s\n", release.c_str(), outcome == "aborted" ? "aborted" : "rolled back",
                    str(*rollout, "reason").c_str());
        return 1;
    }
}

} // namespace releasectl
