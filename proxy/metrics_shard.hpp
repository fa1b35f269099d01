#pragma once
// Per-worker counters. Exactly one writer (the owning worker thread) so an
// increment is a relaxed load+store, not a locked RMW; scrapes read them with
// relaxed loads from another thread and sum the shards.
#include "route_table.hpp"
#include "slot_stats.hpp"

#include <array>
#include <atomic>
#include <cstdint>

namespace releasectl::proxy {

using Counter = std::atomic<std::uint64_t>;

inline void bump(Counter& counter, std::uint64_t n = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void drop(Counter& counter, std::uint64_t n = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
}

struct alignas(64) SlotCounters {
    std::array<Counter, 6> status_class{};
    std::array<Counter, static_cast<std::size_t>(UpstreamErrorKind::kCount)> upstream_errors{};
    std::array<Counter, LatencyBuckets::kCount> latency{};
    Counter latency_sum_micros{0};
    Counter bytes_in{0};
    Counter bytes_out{0};
    Counter in_flight{0};

    void record(unsigned status, std::uint64_t micros) noexcept {
        unsigned cls = status / 100;
        bump(status_class[cls <= 5 ? cls : 0]);
        bump(latency[LatencyBuckets::index_for(micros)]);
        bump(latency_sum_micros, micros);
    }
    void add_to(SlotStats& out) const noexcept {
        for (std::size_t i = 0; i < status_class.size(); ++i) out.status_class[i] += status_class[i].load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < upstream_errors.size(); ++i) out.upstream_errors[i] += upstream_errors[i].load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < latency.size(); ++i) out.latency[i] += latency[i].load(std::memory_order_relaxed);
        out.latency_sum_micros += latency_sum_micros.load(std::memory_order_relaxed);
        out.bytes_in += bytes_in.load(std::memory_order_relaxed);
        out.bytes_out += bytes_out.load(std::memory_order_relaxed);
        out.in_flight += in_flight.load(std::memory_order_relaxed);
    }
};

struct MetricsShard {
    std::array<SlotCounters, kMaxSlots> slots{};
    alignas(64) Counter connections_active{0};
    Counter connections_total{0};
    Counter requests_rejected{0};
    std::array<Counter, 4> tls_handshakes{}; // by TlsHandshakeResult (proxy_server.hpp)
};

} // namespace releasectl::proxy
