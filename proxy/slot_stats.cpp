#include "slot_stats.hpp"

#include <cmath>
#include <limits>

namespace releasectl::proxy {

double LatencyBuckets::upper_micros(std::size_t i) {
    if (i + 1 >= kCount) return std::numeric_limits<double>::infinity();
    return kFirstUpperMicros * std::pow(kGrowth, static_cast<double>(i));
}

std::size_t LatencyBuckets::index_for(std::uint64_t micros) {
    if (micros <= kFirstUpperMicros) return 0;
    // ceil(log_growth(micros / first)): 8 buckets per doubling.
    double steps = std::log2(static_cast<double>(micros) / kFirstUpperMicros) * 8.0;
    auto index = static_cast<std::size_t>(std::ceil(steps - 1e-9));
    return index >= kCount - 1 ? kCount - 1 : index;
}

const char* to_string(UpstreamErrorKind kind) {
    switch (kind) {
    case UpstreamErrorKind::connect: return "connect";
    case UpstreamErrorKind::reset: return "reset";
    case UpstreamErrorKind::timeout: return "timeout";
    case UpstreamErrorKind::bad_response: return "bad_response";
    case UpstreamErrorKind::tls: return "tls";
    case UpstreamErrorKind::kCount: break;
    }
    return "unknown";
}

std::uint64_t SlotStats::requests() const {
    std::uint64_t total = 0;
    for (auto n : status_class) total += n;
    return total;
}

double SlotStats::error_rate() const {
    auto total = requests();
    return total == 0 ? 0.0 : static_cast<double>(errors()) / static_cast<double>(total);
}

double SlotStats::latency_quantile(double q) const {
    std::uint64_t total = 0;
    for (auto n : latency) total += n;
    if (total == 0) return 0.0;
    double rank = q * static_cast<double>(total);
    std::uint64_t below = 0;
    for (std::size_t i = 0; i < latency.size(); ++i) {
        if (latency[i] == 0) continue;
        if (static_cast<double>(below + latency[i]) >= rank) {
            double lower = i == 0 ? 0.0 : LatencyBuckets::upper_micros(i - 1);
            double upper = LatencyBuckets::upper_micros(i);
            if (std::isinf(upper)) return lower / 1e6; // clamp like Prometheus does
            double fraction = (rank - static_cast<double>(below)) / static_cast<double>(latency[i]);
            if (fraction < 0) fraction = 0;
            return (lower + (upper - lower) * fraction) / 1e6;
        }
        below += latency[i];
    }
    return LatencyBuckets::upper_micros(LatencyBuckets::kCount - 2) / 1e6;
}

SlotStats& SlotStats::operator+=(const SlotStats& other) {
    for (std::size_t i = 0; i < status_class.size(); ++i) status_class[i] += other.status_class[i];
    for (std::size_t i = 0; i < upstream_errors.size(); ++i) upstream_errors[i] += other.upstream_errors[i];
    for (std::size_t i = 0; i < latency.size(); ++i) latency[i] += other.latency[i];
    latency_sum_micros += other.latency_sum_micros;
    bytes_in += other.bytes_in;
    bytes_out += other.bytes_out;
    in_flight += other.in_flight;
    return *this;
}

SlotStats SlotStats::minus(const SlotStats& earlier) const {
    // Counters only grow; a smaller value means the earlier snapshot is from a
    // previous process (restart) and the window is then everything we have.
    auto sub = [](std::uint64_t now, std::uint64_t then) { return now >= then ? now - then : now; };
    SlotStats window = *this;
    for (std::size_t i = 0; i < status_class.size(); ++i) window.status_class[i] = sub(status_class[i], earlier.status_class[i]);
    for (std::size_t i = 0; i < upstream_errors.size(); ++i) window.upstream_errors[i] = sub(upstream_errors[i], earlier.upstream_errors[i]);
    for (std::size_t i = 0; i < latency.size(); ++i) window.latency[i] = sub(latency[i], earlier.latency[i]);
    window.latency_sum_micros = sub(latency_sum_micros, earlier.latency_sum_micros);
    window.bytes_in = sub(bytes_in, earlier.bytes_in);
    window.bytes_out = sub(bytes_out, earlier.bytes_out);
    return window;
}

} // namespace releasectl::proxy
