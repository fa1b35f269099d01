#include "slot_chooser.hpp"

#include <charconv>

namespace releasectl::proxy {

int slot_for_bucket(const RouteTable& table, std::uint32_t bucket) {
    const auto total = table.total_weight();
    if (total == 0) return table.live;
    // Order: candidate first, then every other slot in index order.
    std::uint64_t cumulative = 0;
    auto claims = [&](int index) {
        cumulative += table.slots[static_cast<std::size_t>(index)].weight;
        return static_cast<std::uint64_t>(bucket) * total < cumulative * kStickyBuckets;
    };
    if (table.candidate >= 0 && claims(table.candidate)) return table.candidate;
    for (std::size_t i = 0; i < table.slots.size(); ++i) {
        if (static_cast<int>(i) == table.candidate) continue;
        if (table.slots[i].weight == 0) continue;
        if (claims(static_cast<int>(i))) return static_cast<int>(i);
    }
    return table.live;
}

std::string_view cookie_value(std::string_view header, std::string_view name) {
    while (!header.empty()) {
        auto end = header.find(';');
        std::string_view pair = header.substr(0, end);
        while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
        auto eq = pair.find('=');
        if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
            auto value = pair.substr(eq + 1);
            while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
            return value;
        }
        if (end == std::string_view::npos) break;
        header.remove_prefix(end + 1);
    }
    return {};
}

std::optional<std::uint32_t> bucket_from_cookie_header(std::string_view header, std::string_view name) {
    auto value = cookie_value(header, name);
    if (value.empty() || value.size() > 5) return std::nullopt;
    std::uint32_t bucket = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), bucket);
    if (ec != std::errc{} || end != value.data() + value.size() || bucket >= kStickyBuckets) return std::nullopt;
    return bucket;
}

int SmoothWeightedRoundRobin::pick(const RouteTable& table) {
    if (version_ != table.version || current_.size() != table.slots.size()) {
        version_ = table.version;
        current_.assign(table.slots.size(), 0);
    }
    const std::int64_t total = table.total_weight();
    if (total == 0) return table.live;
    int best = -1;
    for (std::size_t i = 0; i < table.slots.size(); ++i) {
        if (table.slots[i].weight == 0) continue;
        current_[i] += table.slots[i].weight;
        if (best < 0 || current_[i] > current_[static_cast<std::size_t>(best)]) best = static_cast<int>(i);
    }
    current_[static_cast<std::size_t>(best)] -= total;
    return best;
}

} // namespace releasectl::proxy
