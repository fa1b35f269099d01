#include "controller/rollout_state_json.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <stdexcept>

namespace releasectl {

namespace json = boost::json;

namespace {

// ---------------------------------------------------------------- writing

json::value time_value(TimePoint t) { return json::value(static_cast<std::int64_t>(t.time_since_epoch().count())); }
json::value optional_time(const std::optional<TimePoint>& t) { return t ? time_value(*t) : json::value(nullptr); }

template <typename T, typename F>
json::array array_of(const std::vector<T>& items, F convert) {
    json::array out;
    for (const T& item : items) out.push_back(convert(item));
    return out;
}

json::object string_map(const std::map<std::string, std::string>& map) {
    json::object o;
    for (const auto& [key, value] : map) o[key] = value;
    return o;
}

// ---------------------------------------------------------------- reading
// Inside this file a malformed document throws BadField (carrying the JSON path);
// the public functions turn it into an error value.

struct BadField : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Reader {
public:
    Reader(const json::value& value, std::string path) : value_(value), path_(std::move(path)) {
        if (!value_.is_object()) fail("expected an object");
    }

    [[noreturn]] void fail(const std::string& message, const std::string& key = "") const {
        throw BadField((key.empty() ? path_ : child_path(key)) + ": " + message);
    }
    std::string child_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

    const json::value* find(const std::string& key) const {
        const json::value* found = value_.as_object().if_contains(key);
        return found && !found->is_null() ? found : nullptr;
    }
    const json::value& need(const std::string& key) const {
        const json::value* found = find(key);
        if (!found) fail("missing", key);
        return *found;
    }

    std::string string(const std::string& key, const std::string& fallback = "") const {
        const json::value* v = find(key);
        if (!v) return fallback;
        if (!v->is_string()) fail("expected a string", key);
        return std::string(v->as_string());
    }
    bool boolean(const std::string& key, bool fallback) const {
        const json::value* v = find(key);
        if (!v) return fallback;
        if (!v->is_bool()) fail("expected true or false", key);
        return v->as_bool();
    }
    std::int64_t integer(const std::string& key, std::int64_t fallback) const {
        const json::value* v = find(key);
        if (!v) return fallback;
        return as_integer(*v, child_path(key));
    }
    std::uint64_t unsigned_integer(const std::string& key, std::uint64_t fallback) const {
        const json::value* v = find(key);
        if (!v) return fallback;
        return as_unsigned(*v, child_path(key));
    }
    double number(const std::string& key, double fallback) const {
        const json::value* v = find(key);
        if (!v) return fallback;
        return as_double(*v, child_path(key));
    }
    std::optional<double> optional_number(const std::string& key) const {
        const json::value* v = find(key);
        if (!v) return std::nullopt;
        return as_double(*v, child_path(key));
    }
    std::optional<std::uint64_t> optional_unsigned(const std::string& key) const {
        const json::value* v = find(key);
        if (!v) return std::nullopt;
        return as_unsigned(*v, child_path(key));
    }
    TimePoint time(const std::string& key) const {
        const json::value* v = find(key);
        if (!v) return TimePoint{};
        return TimePoint(std::chrono::milliseconds(as_integer(*v, child_path(key))));
    }
    std::optional<TimePoint> optional_time(const std::string& key) const {
        if (!find(key)) return std::nullopt;
        return time(key);
    }
    template <typename Enum>
    Enum enumeration(const std::string& key, Enum fallback, std::optional<Enum> (*parse)(std::string_view)) const {
        const json::value* v = find(key);
        if (!v) return fallback;
        if (!v->is_string()) fail("expected a string", key);
        auto parsed = parse(v->as_string());
        if (!parsed) fail("unknown value \"" + std::string(v->as_string()) + "\"", key);
        return *parsed;
    }
    const json::array* array(const std::string& key) const {
        const json::value* v = find(key);
        if (!v) return nullptr;
        if (!v->is_array()) fail("expected an array", key);
        return &v->as_array();
    }
    std::vector<std::string> strings(const std::string& key) const {
        std::vector<std::string> out;
        if (const json::array* a = array(key))
            for (std::size_t i = 0; i < a->size(); ++i) {
                if (!(*a)[i].is_string()) fail("expected a string", key + "[" + std::to_string(i) + "]");
                out.emplace_back((*a)[i].as_string());
            }
        return out;
    }
    std::vector<unsigned> unsigneds(const std::string& key) const {
        std::vector<unsigned> out;
        if (const json::array* a = array(key))
            for (std::size_t i = 0; i < a->size(); ++i)
                out.push_back(static_cast<unsigned>(as_unsigned((*a)[i], child_path(key) + "[" + std::to_string(i) + "]")));
        return out;
    }
    std::map<std::string, std::string> string_map(const std::string& key) const {
        std::map<std::string, std::string> out;
        const json::value* v = find(key);
        if (!v) return out;
        if (!v->is_object()) fail("expected an object", key);
        for (const auto& entry : v->as_object()) {
            if (!entry.value().is_string()) fail("expected a string", key + "." + std::string(entry.key()));
            out[std::string(entry.key())] = std::string(entry.value().as_string());
        }
        return out;
    }
    std::map<std::string, unsigned> unsigned_map(const std::string& key) const {
        std::map<std::string, unsigned> out;
        const json::value* v = find(key);
        if (!v) return out;
        if (!v->is_object()) fail("expected an object", key);
        for (const auto& entry : v->as_object())
            out[std::string(entry.key())] = static_cast<unsigned>(
                as_unsigned(entry.value(), child_path(key) + "." + std::string(entry.key())));
        return out;
    }
    Reader child(const std::string& key) const { return Reader(need(key), child_path(key)); }

    static std::int64_t as_integer(const json::value& v, const std::string& path) {
        if (v.is_int64()) return v.as_int64();
        if (v.is_uint64() && v.as_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
            return static_cast<std::int64_t>(v.as_uint64());
        throw BadField(path + ": expected an integer");
    }
    static std::uint64_t as_unsigned(const json::value& v, const std::string& path) {
        if (v.is_uint64()) return v.as_uint64();
        if (v.is_int64() && v.as_int64() >= 0) return static_cast<std::uint64_t>(v.as_int64());
        throw BadField(path + ": expected an unsigned integer");
    }
    static double as_double(const json::value& v, const std::string& path) {
        if (v.is_double()) return v.as_double();
        if (v.is_int64()) return static_cast<double>(v.as_int64());
        if (v.is_uint64()) return static_cast<double>(v.as_uint64());
        throw BadField(path + ": expected a number");
    }

    const json::value& value() const { return value_; }
    const std::string& path() const { return path_; }

private:
    const json::value& value_;
    std::string path_;
};

Verdict read_verdict(const Reader& in) {
    Verdict v;
    v.kind = in.enumeration("kind", VerdictKind::inconclusive, &verdict_kind_from_string);
    v.requests = in.unsigned_integer("requests", 0);
    v.errors = in.unsigned_integer("errors", 0);
    v.error_rate = in.number("error_rate", 0.0);
    v.p95_seconds = in.number("p95_seconds", 0.0);
    v.baseline_requests = in.optional_unsigned("baseline_requests");
    v.baseline_error_rate = in.optional_number("baseline_error_rate");
    v.baseline_p95_seconds = in.optional_number("baseline_p95_seconds");
    v.reasons = in.strings("reasons");
    return v;
}

StepRecord read_step(const Reader& in) {
    StepRecord r;
    r.percent = static_cast<unsigned>(in.unsigned_integer("percent", 0));
    r.started_at = in.time("started_at");
    r.ended_at = in.optional_time("ended_at");
    r.requests = in.unsigned_integer("requests", 0);
    r.errors = in.unsigned_integer("errors", 0);
    r.max_p95_seconds = in.number("max_p95_seconds", 0.0);
    r.checks = static_cast<unsigned>(in.unsigned_integer("checks", 0));
    r.passes = static_cast<unsigned>(in.unsigned_integer("passes", 0));
    r.fails = static_cast<unsigned>(in.unsigned_integer("fails", 0));
    r.inconclusives = static_cast<unsigned>(in.unsigned_integer("inconclusives", 0));
    r.outcome = in.string("outcome");
    return r;
}

Rollout read_rollout(const Reader& in) {
    Rollout r;
    r.kind = in.enumeration("kind", RolloutKind::canary, &rollout_kind_from_string);
    r.release = in.string("release");
    if (r.release.empty()) in.fail("missing", "release");
    r.candidate_slot = in.string("candidate_slot");
    r.live_slot = in.string("live_slot");
    r.live_release = in.string("live_release");
    r.previous_before = in.string("previous_before");
    if (in.find("plan")) {
        Reader plan = in.child("plan");
        r.plan.strategy = plan.enumeration("strategy", Strategy::canary, &strategy_from_string);
        r.plan.steps = plan.unsigneds("steps");
        r.plan.gates = plan.unsigneds("gates");
        r.plan.step_duration = Duration(plan.integer("step_duration_ms", 300'000));
    }
    r.started_at = in.time("started_at");
    r.start_stage = in.enumeration("start_stage", StartStage::health, &start_stage_from_string);
    r.step = static_cast<int>(in.integer("step", -1));
    if (r.step < -1 || (r.step >= 0 && static_cast<std::size_t>(r.step) >= r.plan.steps.size()))
        in.fail("out of range for the plan's steps", "step");
    r.step_started_at = in.time("step_started_at");
    r.consecutive_failures = static_cast<unsigned>(in.unsigned_integer("consecutive_failures", 0));
    r.step_requests = in.unsigned_integer("step_requests", 0);
    if (in.find("last_verdict")) r.last_verdict = read_verdict(in.child("last_verdict"));
    r.last_check_at = in.optional_time("last_check_at");
    r.pause_reason = in.enumeration("pause_reason", PauseReason::manual, &pause_reason_from_string);
    r.pause_message = in.string("pause_message");
    r.paused_at = in.optional_time("paused_at");
    if (const json::array* steps = in.array("step_records"))
        for (std::size_t i = 0; i < steps->size(); ++i)
            r.step_records.push_back(read_step(Reader((*steps)[i], in.child_path("step_records") + "[" +
                                                                         std::to_string(i) + "]")));
    r.outcome = in.enumeration("outcome", Outcome::in_progress, &outcome_from_string);
    r.reason = in.string("reason");
    r.finished_at = in.optional_time("finished_at");
    return r;
}

RolloutState read_state(const Reader& in) {
    const std::int64_t version = in.integer("version", kStateFormatVersion);
    if (version != kStateFormatVersion)
        in.fail("unsupported state format version " + std::to_string(version), "version");
    RolloutState s;
    s.phase = in.enumeration("phase", Phase::idle, &phase_from_string);
    s.slot_release = in.string_map("slot_release");
    s.live_slot = in.string("live_slot");
    s.weights = in.unsigned_map("weights");
    s.current_release = in.string("current_release");
    s.previous_release = in.string("previous_release");
    if (in.find("rollout")) s.rollout = read_rollout(in.child("rollout"));
    s.kept_slot = in.string("kept_slot");
    s.rollback_window_until = in.optional_time("rollback_window_until");
    if (const json::array* history = in.array("history"))
        for (std::size_t i = 0; i < history->size(); ++i)
            s.history.push_back(read_rollout(Reader((*history)[i], "history[" + std::to_string(i) + "]")));
    s.revision = in.unsigned_integer("revision", 0);
    if (s.phase != Phase::idle && !s.rollout) in.fail("phase " + std::string(to_string(s.phase)) + " needs a rollout", "rollout");
    if (s.phase == Phase::promoted && s.kept_slot.empty()) in.fail("phase promoted needs a kept slot", "kept_slot");
    return s;
}

void pretty(const json::value& v, std::string& out, int indent) {
    const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
    const std::string inner(static_cast<std::size_t>(indent + 1) * 2, ' ');
    if (v.is_object() && !v.as_object().empty()) {
        out += "{\n";
        bool first = true;
        for (const auto& entry : v.as_object()) {
            if (!first) out += ",\n";
            first = false;
            out += inner + json::serialize(json::value(entry.key())) + ": ";
            pretty(entry.value(), out, indent + 1);
        }
        out += "\n" + pad + "}";
    } else if (v.is_array() && !v.as_array().empty()) {
        // Arrays of scalars stay on one line ("steps": [10, 25, 50]).
        bool scalars = true;
        for (const auto& item : v.as_array()) scalars = scalars && !item.is_object() && !item.is_array();
        if (scalars) {
            out += json::serialize(v);
            return;
        }
        out += "[\n";
        bool first = true;
        for (const auto& item : v.as_array()) {
            if (!first) out += ",\n";
            first = false;
            out += inner;
            pretty(item, out, indent + 1);
        }
        out += "\n" + pad + "]";
    } else {
        out += json::serialize(v);
    }
}

} // namespace

json::value to_json(const Verdict& v) {
    json::object o;
    o["kind"] = to_string(v.kind);
    o["requests"] = v.requests;
    o["errors"] = v.errors;
    o["error_rate"] = v.error_rate;
    o["p95_seconds"] = v.p95_seconds;
    o["baseline_requests"] = v.baseline_requests ? json::value(*v.baseline_requests) : json::value(nullptr);
    o["baseline_error_rate"] = v.baseline_error_rate ? json::value(*v.baseline_error_rate) : json::value(nullptr);
    o["baseline_p95_seconds"] = v.baseline_p95_seconds ? json::value(*v.baseline_p95_seconds) : json::value(nullptr);
    o["reasons"] = array_of(v.reasons, [](const std::string& s) { return json::value(s); });
    o["summary"] = v.summary(); // for humans and the CLI; ignored when read back
    return o;
}

json::value to_json(const StepRecord& r) {
    json::object o;
    o["percent"] = r.percent;
    o["started_at"] = time_value(r.started_at);
    o["ended_at"] = optional_time(r.ended_at);
    o["requests"] = r.requests;
    o["errors"] = r.errors;
    o["max_p95_seconds"] = r.max_p95_seconds;
    o["checks"] = r.checks;
    o["passes"] = r.passes;
    o["fails"] = r.fails;
    o["inconclusives"] = r.inconclusives;
    o["outcome"] = r.outcome;
    return o;
}

json::value to_json(const Rollout& r) {
    json::object o;
    o["kind"] = to_string(r.kind);
    o["release"] = r.release;
    o["candidate_slot"] = r.candidate_slot;
    o["live_slot"] = r.live_slot;
    o["live_release"] = r.live_release;
    o["previous_before"] = r.previous_before;
    json::object plan;
    plan["strategy"] = to_string(r.plan.strategy);
    plan["steps"] = array_of(r.plan.steps, [](unsigned x) { return json::value(x); });
    plan["gates"] = array_of(r.plan.gates, [](unsigned x) { return json::value(x); });
    plan["step_duration_ms"] = static_cast<std::int64_t>(r.plan.step_duration.count());
    o["plan"] = std::move(plan);
    o["started_at"] = time_value(r.started_at);
    o["start_stage"] = to_string(r.start_stage);
    o["step"] = r.step;
    o["percent"] = r.percent();      // derived, for readers
    o["progress"] = r.progress();    // derived, for readers
    o["step_started_at"] = time_value(r.step_started_at);
    o["consecutive_failures"] = r.consecutive_failures;
    o["step_requests"] = r.step_requests;
    o["last_verdict"] = r.last_verdict ? to_json(*r.last_verdict) : json::value(nullptr);
    o["last_check_at"] = optional_time(r.last_check_at);
    o["pause_reason"] = to_string(r.pause_reason);
    o["pause_message"] = r.pause_message;
    o["paused_at"] = optional_time(r.paused_at);
    o["step_records"] = array_of(r.step_records, [](const StepRecord& s) { return to_json(s); });
    o["outcome"] = to_string(r.outcome);
    o["reason"] = r.reason;
    o["finished_at"] = optional_time(r.finished_at);
    return o;
}

json::value to_json(const RolloutState& s) {
    json::object o;
    o["version"] = kStateFormatVersion;
    o["revision"] = s.revision;
    o["phase"] = to_string(s.phase);
    o["slot_release"] = string_map(s.slot_release);
    o["live_slot"] = s.live_slot;
    json::object weights;
    for (const auto& [slot, weight] : s.weights) weights[slot] = weight;
    o["weights"] = std::move(weights);
    o["current_release"] = s.current_release;
    o["previous_release"] = s.previous_release;
    o["rollout"] = s.rollout ? to_json(*s.rollout) : json::value(nullptr);
    o["kept_slot"] = s.kept_slot;
    o["rollback_window_until"] = optional_time(s.rollback_window_until);
    o["history"] = array_of(s.history, [](const Rollout& r) { return to_json(r); });
    return o;
}

std::string pretty_json(const json::value& value) {
    std::string out;
    pretty(value, out, 0);
    out += "\n";
    return out;
}

std::string serialize_state(const RolloutState& state) { return pretty_json(to_json(state)); }

StateParseResult parse_state(std::string_view json_text) {
    StateParseResult result;
    boost::system::error_code ec;
    json::value document = json::parse(json_text, ec);
    if (ec) {
        result.error = "not valid JSON: " + ec.message();
        return result;
    }
    try {
        result.state = read_state(Reader(document, ""));
    } catch (const BadField& bad) {
        result.error = bad.what();
    }
    return result;
}

std::optional<Verdict> verdict_from_json(const json::value& value, std::string* error) {
    try {
        return read_verdict(Reader(value, "verdict"));
    } catch (const BadField& bad) {
        if (error) *error = bad.what();
        return std::nullopt;
    }
}

std::optional<Rollout> rollout_from_json(const json::value& value, std::string* error) {
    try {
        return read_rollout(Reader(value, "rollout"));
    } catch (const BadField& bad) {
        if (error) *error = bad.what();
        return std::nullopt;
    }
}

FileResult save_state_file(const std::string& path, const RolloutState& state) {
    return write_file_atomically(path, serialize_state(state), 0644);
}

StateParseResult load_state_file(const std::string& path, bool* missing) {
    StateParseResult result;
    std::string error;
    bool absent = false;
    auto text = read_whole_file(path, &error, &absent);
    if (missing) *missing = absent;
    if (!text) {
        if (!absent) result.error = error;
        return result;
    }
    result = parse_state(*text);
    if (!result.state) result.error = path + ": " + result.error;
    return result;
}

} // namespace releasectl
