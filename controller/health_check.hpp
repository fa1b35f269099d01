#pragma once
// One HTTP health probe of a slot's upstream: GET <path> over TCP or a Unix
// socket; healthy means a 2xx status line within the timeout.
#include "proxy/settings.hpp"

#include <boost/asio/awaitable.hpp>

#include <string>

namespace releasectl {

struct HealthProbeResult {
    bool healthy = false;
    int status = 0;    // HTTP status, 0 if none was received
    std::string error; // why it is not healthy: "connect: Connection refused", "status 503", "timed out after 2s"
};

// Runs on the caller's executor. Never throws for network problems.
boost::asio::awaitable<HealthProbeResult> probe_health(const proxy::UpstreamAddress& upstream, std::string path,
                                                       proxy::Duration timeout);

} // namespace releasectl
