#pragma once
// Builds the data plane's route table from configuration and slot weights.
#include "config.hpp"
#include "proxy/route_table.hpp"

#include <map>
#include <string>

namespace releasectl {

// `weights` by slot name (missing = 0). `live`/`candidate` are slot names or "".
// When live is empty the slot with the highest weight is live.
proxy::RouteTable build_route_table(const Config& config, const std::map<std::string, unsigned>& weights,
                                    const std::string& live = {}, const std::string& candidate = {},
                                    const std::map<std::string, std::string>& releases = {});

} // namespace releasectl
