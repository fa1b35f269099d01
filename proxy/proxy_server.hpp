#pragma once
// The data plane as the controller sees it: start N workers, publish route
// tables, read metric snapshots, drain. No Beast or Asio types leak from here.
#include "route_table.hpp"
#include "settings.hpp"
#include "slot_stats.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace releasectl::proxy {

class TlsContextSet;          // tls_context.hpp
struct AcmeChallenges;        // acme_challenges.hpp

// How a client's TLS handshake on an HTTPS listener ended.
enum class TlsHandshakeResult : std::uint8_t { full = 0, resumed, failed, timed_out, kCount };
constexpr const char* to_string(TlsHandshakeResult result) {
    constexpr const char* names[] = {"full", "resumed", "failed", "timeout"};
    auto index = static_cast<std::size_t>(result);
    return index < std::size(names) ? names[index] : "?";
}

struct ProxyStats {
    std::uint64_t connections_active = 0;
    std::uint64_t connections_total = 0;
    std::uint64_t requests_rejected = 0; // 4xx made by the proxy itself
    std::array<std::uint64_t, static_cast<std::size_t>(TlsHandshakeResult::kCount)> tls_handshakes{};
};

// One line of the access log, handed to the sink on the worker thread that
// served the request. The sink must not block (the default one is async).
struct AccessRecord {
    std::int64_t unix_micros = 0;
    std::string_view client, method, host, path, slot, release, request_id, user_agent;
    unsigned status = 0;
    std::uint64_t bytes_in = 0, bytes_out = 0;
    std::uint64_t duration_micros = 0, upstream_micros = 0;
};
using AccessSink = std::function<void(const AccessRecord&)>;

class ProxyServer {
public:
    // Binds every listener (SO_REUSEPORT, one acceptor per worker). Throws
    // std::runtime_error naming the address on failure: startup is the one place
    // errors are exceptions. With settings.listen_tls, `tls` is what the HTTPS
    // listeners serve; when null it is loaded from settings.certificates.
    ProxyServer(ProxySettings settings, RouteTable initial, AccessSink access_sink = {},
                std::shared_ptr<const TlsContextSet> tls = nullptr);
    ~ProxyServer();
    ProxyServer(const ProxyServer&) = delete;
    ProxyServer& operator=(const ProxyServer&) = delete;

    void start();                          // spawns the worker threads
    std::uint64_t publish(RouteTable table); // atomic; visible to the next request
    RouteTable route_table() const;
    // Certificates for new TLS connections from now on (SIGHUP); connections
    // already open keep theirs. Atomic; the request path takes no lock.
    void publish_tls(std::shared_ptr<const TlsContextSet> tls);
    // Limits, timeouts, trusted proxies, redirect and security headers for
    // requests from now on (SIGHUP); a request in progress finishes on the
    // settings it started with. Listeners and the worker count keep their
    // startup values. Returns why not ("" on success), keeping the old ones.
    std::string publish_settings(ProxySettings settings);
    // HTTP-01 answers for pending ACME orders (null or empty: none).
    void publish_acme_challenges(std::shared_ptr<const AcmeChallenges> challenges);
    std::vector<SlotStats> slot_stats() const; // index == slot index, summed over workers
    ProxyStats stats() const;
    unsigned worker_count() const;
    // Stop accepting, let in-flight requests finish within timeouts.drain, close
    // idle connections and tunnels, then let wait() return.
    void begin_drain();
    void wait();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace releasectl::proxy
