#include "route_builder.hpp"

namespace releasectl {

proxy::RouteTable build_route_table(const Config& config, const std::map<std::string, unsigned>& weights,
                                    const std::string& live, const std::string& candidate,
                                    const std::map<std::string, std::string>& releases) {
    proxy::RouteTable table;
    for (const auto& slot : config.slots) {
        proxy::SlotRoute route;
        route.name = slot.name;
        route.upstream = slot.upstream;
        route.upstream_tls = slot.upstream_tls;
        auto w = weights.find(slot.name);
        route.weight = w == weights.end() ? 0 : w->second;
        auto r = releases.find(slot.name);
        if (r != releases.end()) route.release = r->second;
        table.slots.push_back(std::move(route));
    }
    table.sticky = config.routing.sticky;
    table.sticky_cookie = config.routing.sticky_cookie;
    table.override_header = config.routing.override_header;
    table.live = live.empty() ? -1 : table.slot_index(live);
    if (table.live < 0) {
        std::uint32_t best = 0;
        for (std::size_t i = 0; i < table.slots.size(); ++i)
            if (table.slots[i].weight > best) {
                best = table.slots[i].weight;
                table.live = static_cast<int>(i);
            }
    }
    table.candidate = candidate.empty() ? -1 : table.slot_index(candidate);
    if (table.candidate < 0) {
        // With exactly two weighted slots the lighter one is the candidate, so
        // stickiness grows its share from the bottom buckets up.
        for (std::size_t i = 0; i < table.slots.size(); ++i)
            if (static_cast<int>(i) != table.live && table.slots[i].weight > 0) table.candidate = static_cast<int>(i);
    }
    return table;
}

} // namespace releasectl
