#pragma once
// One HTTP health probe of a slot's upstream: GET <path> over TCP, TLS
// (https:// upstreams) or a Unix socket; healthy means a 2xx status line
// within the timeout.
#include "proxy/settings.hpp"
#include "proxy/upstream_tls.hpp"

#include <memory>

#include <boost/asio/awaitable.hpp>

#include <string>

namespace releasectl {

struct HealthProbeResult {
    bool healthy = false;
    int status = 0;    // HTTP status, 0 if none was received
    std::string error; // why it is not healthy: "connect: Connection refused", "status 503", "timed out after 2s"
};

// Runs on the caller's executor. Never throws for network problems.
// `tls` is the slot's client for an https:// upstream (null otherwise); the
// probe keeps it alive while it runs.
boost::asio::awaitable<HealthProbeResult> probe_health(const proxy::UpstreamAddress& upstream,
                                                       std::shared_ptr<const proxy::UpstreamTlsClient> tls,
                                                       std::string path, proxy::Duration timeout);

} // namespace releasectl
