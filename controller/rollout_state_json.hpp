#pragma once
// state.json: the rollout state (slot bindings, weights, the rollout with its
// step, clocks, counters, verdicts) and the history, as JSON. Everything needed
// to resume after a crash round-trips exactly. Also used by `status --json` and
// `history --json`.
#include "controller/atomic_file.hpp"
#include "controller/rollout_machine.hpp"

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace releasectl {

inline constexpr int kStateFormatVersion = 1;

boost::json::value to_json(const Verdict& verdict);
boost::json::value to_json(const StepRecord& record);
boost::json::value to_json(const Rollout& rollout);
boost::json::value to_json(const RolloutState& state);

// Pretty-printed JSON (2-space indent) ending in a newline.
std::string serialize_state(const RolloutState& state);
std::string pretty_json(const boost::json::value& value);

struct StateParseResult {
    std::optional<RolloutState> state;
    std::string error; // "rollout.step_records[1].requests: expected an unsigned integer"
};
StateParseResult parse_state(std::string_view json_text);

// Conversions of parts (same error convention); used by the tests and the admin API.
std::optional<Verdict> verdict_from_json(const boost::json::value& value, std::string* error);
std::optional<Rollout> rollout_from_json(const boost::json::value& value, std::string* error);

// <state_dir>/state.json helpers.
FileResult save_state_file(const std::string& path, const RolloutState& state);
// missing file: state nullopt, *missing = true (a fresh install, not an error).
StateParseResult load_state_file(const std::string& path, bool* missing);

} // namespace releasectl
