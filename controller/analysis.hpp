#pragma once
// Analysis: judges a candidate slot's window of traffic against absolute limits
// and, when configured, against the live slot (the baseline). Pure code: the
// daemon takes the window (difference of two SlotStats snapshots) and feeds the
// resulting Verdict to the rollout machine as a Tick.
#include "controller/config.hpp"
#include "proxy/slot_stats.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace releasectl {

enum class VerdictKind { pass, fail, inconclusive };
const char* to_string(VerdictKind kind);                  // "pass", "fail", "inconclusive"
std::optional<VerdictKind> verdict_kind_from_string(std::string_view text);

struct Verdict {
    VerdictKind kind = VerdictKind::inconclusive;
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;
    double error_rate = 0.0;  // 0..1
    double p95_seconds = 0.0;
    // Baseline (live slot) numbers, present when a baseline window was given.
    std::optional<std::uint64_t> baseline_requests;
    std::optional<double> baseline_error_rate;
    std::optional<double> baseline_p95_seconds;
    // Human sentences with numbers: why it failed / was inconclusive / passed.
    std::vector<std::string> reasons;

    // One line: "fail: 1000 requests, error rate 10.2% > 5.0%".
    std::string summary() const;
    bool operator==(const Verdict&) const = default;
};

// The three numbers a judgement needs, whatever their source (the proxy's own
// SlotStats, or Prometheus when [analysis] source = "prometheus").
struct WindowNumbers {
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;   // 5xx, including the proxy's own 502/504
    double p95_seconds = 0.0;
    static WindowNumbers from(const proxy::SlotStats& window);
};

// Rules (a value exactly at a limit passes):
//  - inconclusive when the window has fewer than policy.min_requests requests
//    (a small sample proves nothing either way; min_requests = 0 disables this);
//  - fail when error rate > max_error_rate or p95 > max_p95;
//  - fail, when configured and the baseline saw >= min_requests, when the error
//    rate exceeds the baseline's by more than max_error_rate_increase, or the p95
//    exceeds baseline p95 * max_p95_ratio;
//  - pass otherwise.
Verdict judge(const proxy::SlotStats& candidate_window,
              const proxy::SlotStats* baseline_window,
              const RolloutConfig& policy);
Verdict judge(const WindowNumbers& candidate,
              const std::optional<WindowNumbers>& baseline,
              const RolloutConfig& policy);

// Formatting shared with status / history output.
std::string format_percent(double fraction);     // 0.102 -> "10.2%"
std::string format_seconds(double seconds);      // 0.0123 -> "12ms", 2.31 -> "2.31s"

} // namespace releasectl
