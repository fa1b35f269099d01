#pragma once
// Which slot serves a request: tester override, then sticky bucket, then smooth
// weighted round robin. Pure and per-worker (no sharing between threads).
#include "route_table.hpp"

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace releasectl::proxy {

inline constexpr std::uint32_t kStickyBuckets = 10'000;

// Sticky buckets map onto the weights in a fixed order, candidate first, so as
// the candidate's share grows its existing visitors stay on it (a visitor on
// the candidate at 10 % is still on it at 25, 50, 75 %).
int slot_for_bucket(const RouteTable& table, std::uint32_t bucket);

// Parses our sticky cookie's value out of a Cookie header; nullopt if absent or invalid.
std::optional<std::uint32_t> bucket_from_cookie_header(std::string_view cookie_header, std::string_view cookie_name);
// Finds a cookie's value by name in a Cookie header ("" if absent).
std::string_view cookie_value(std::string_view cookie_header, std::string_view cookie_name);

class SmoothWeightedRoundRobin {
public:
    // Nginx's smooth WRR: exact shares within one cycle of total_weight picks,
    // and well interleaved. Resets itself when the table version changes.
    int pick(const RouteTable& table);

private:
    std::uint64_t version_ = 0;
    std::vector<std::int64_t> current_;
};

} // namespace releasectl::proxy
