#pragma once
// Counters of one slot as plain values: what the controller's analysis and the
// metrics exposition read. Cumulative since start; a window is the difference
// of two snapshots. Pure value code, no I/O.
#include <array>
#include <chrono>
#include <cstdint>

namespace releasectl::proxy {

// Latency buckets: geometric with 8 buckets per doubling, from 100 µs up to
// ~107 s, so any quantile estimated from them is within ~4.5 % of the exact one.
struct LatencyBuckets {
    static constexpr std::size_t kCount = 161; // last bucket is +Inf
    static constexpr double kFirstUpperMicros = 100.0;
    static constexpr double kGrowth = 1.0905077326652577; // 2^(1/8)
    // Upper bound of bucket i in microseconds (infinity for the last one).
    static double upper_micros(std::size_t i);
    static std::size_t index_for(std::uint64_t micros);
};

enum class UpstreamErrorKind : std::uint8_t { connect = 0, reset, timeout, bad_response, tls, kCount };
const char* to_string(UpstreamErrorKind kind);

struct SlotStats {
    // responses by status class: index 1..5 = 1xx..5xx, 0 = connection ended
    // before any status could be sent
    std::array<std::uint64_t, 6> status_class{};
    std::array<std::uint64_t, static_cast<std::size_t>(UpstreamErrorKind::kCount)> upstream_errors{};
    std::array<std::uint64_t, LatencyBuckets::kCount> latency{};
    std::uint64_t latency_sum_micros = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t in_flight = 0; // gauge, not a counter

    std::uint64_t requests() const;
    std::uint64_t errors() const { return status_class[5]; } // 5xx incl. proxy's 502/504
    double error_rate() const; // 0 when no requests
    // Quantile q in [0,1] in seconds, interpolated inside the bucket; 0 when empty.
    double latency_quantile(double q) const;

    SlotStats& operator+=(const SlotStats& other);
    // Window: this minus an earlier snapshot (gauges keep this snapshot's value).
    SlotStats minus(const SlotStats& earlier) const;
};

} // namespace releasectl::proxy
