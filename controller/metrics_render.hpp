#pragma once
// What `/metrics` says: every releasectl_* and process_* series, rendered from
// plain values the daemon collects on the control thread at scrape time. The
// series names and labels are an interface (README "Metrics"); change them only
// together with scripts/monitoring/ and the analysis PromQL defaults.
#include "proxy/proxy_server.hpp"
#include "proxy/slot_stats.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace releasectl {

struct SlotMetrics {
    std::string name;    // "blue"
    std::string release; // release bound to the slot, "" when none
    double weight = 0;   // published route weight (percent)
    bool healthy = false;
    proxy::SlotStats stats; // cumulative, summed over the workers
    // stats.status_class when `release` was bound to the slot: requests_total
    // {release} counts that release's requests only (zeros = since start).
    std::array<std::uint64_t, 6> release_baseline{};
};

// The standard process_* numbers (what client_golang's process collector reports).
struct ProcessStats {
    double cpu_seconds = 0;         // user + system
    double resident_bytes = 0;
    double virtual_bytes = 0;
    double open_fds = 0;
    double max_fds = 0;
    double start_time_seconds = 0;  // since the Unix epoch
};
// Reads /proc/self (Linux). Fields it cannot read stay 0.
ProcessStats read_process_stats();

// Rollback reasons that always have a series (0 until the first one), so that
// increase()/rate() also see the very first rollback. Matches the labels the
// controller counts under; unknown extra reasons in the map are rendered too.
inline const std::vector<std::string>& known_rollback_reasons() {
    static const std::vector<std::string> reasons{"analysis", "manual", "hook", "restart", "unhealthy", "other"};
    return reasons;
}

struct MetricsInputs {
    std::vector<SlotMetrics> slots;                       // declaration order
    proxy::ProxyStats proxy;
    unsigned rollout_step = 0;                            // 1-based step of the rollout in progress, 0 when none
    std::string rollout_state;                            // e.g. "running"
    std::vector<std::string> rollout_states;              // every state name, for the one-hot gauge
    std::map<std::string, std::uint64_t> rollbacks_by_reason;
    std::string version;                                  // releasectl version
    std::optional<ProcessStats> process;                  // nullopt: read /proc/self while rendering
};

// The whole exposition (text format 0.0.4).
std::string render_metrics(const MetricsInputs& inputs);

// /health/ready: every check named, e.g. {"listeners": ok}, {"live_slot": not ok, "unhealthy"}.
struct ReadinessCheck {
    std::string name;
    bool ok = false;
    std::string detail; // shown instead of "ok" when failing ("" = "failed")
};
struct ReadinessReport {
    std::vector<ReadinessCheck> checks;
    bool ready() const; // all checks ok
};
// {"status":"ready","checks":{"listeners":"ok","live_slot":"ok"}} or "not_ready".
std::string render_readiness(const ReadinessReport& report);

// --- latency histogram exposure (public for the accuracy tests) -------------
//
// Internally a slot keeps 161 buckets growing by 2^(1/8) (9.05 % apart). Linear
// interpolation inside a bucket (histogram_quantile) can be off by at most the
// bucket's relative width, whatever the distribution. To promise "p95 within
// 10 % between 0.05 s and 5 s" we therefore expose EVERY internal boundary from
// just below 50 ms to just above 5 s (worst case 9.05 %), and thin them out
// outside that band (every 2nd = 19 % apart from 0.95 ms to 43 ms, every 4th
// = 41 % apart from 5.5 s to 88 s, every 8th below 1 ms; beyond 88 s: +Inf). Within the band Prometheus then computes
// the same p95 as the controller's own analysis, from the same counts.
//
// Exposed boundaries are internal boundaries, so the cumulative counts are
// exact: since observations are whole microseconds, `le` is the largest whole
// microsecond that falls into the internal bucket (e.g. 0.04695 s), which
// reads better than the irrational bound and selects exactly the same requests.
struct ExposedBucket {
    std::size_t internal_index; // last internal bucket folded into this one
    double le_seconds;
};
const std::vector<ExposedBucket>& exposed_latency_buckets();
// Per-exposed-bucket (non-cumulative) counts plus a final overflow entry.
std::vector<std::uint64_t> fold_latency(const proxy::SlotStats& stats);

} // namespace releasectl
