#pragma once
// The metrics listener ([metrics] listen, default 127.0.0.1:9180): a tiny
// HTTP/1.1 server on the control thread serving
//   GET /metrics       Prometheus text 0.0.4 (bearer token required when set)
//   GET /health/live   200 {"status":"live"} while the process runs
//   GET /health/ready  200 when every readiness check passes, else 503; the
//                      JSON body names each check
// 404 for other paths, 405 for methods other than GET/HEAD. Keep-alive,
// bounded request size, a timeout on every read and write, a cap on
// concurrent connections. Beast stays inside metrics_server.cpp.
#include "controller/metrics_render.hpp"

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace releasectl {

class MetricsServer {
public:
    // `listen` is "host:port" ("127.0.0.1:9180", "[::1]:9180", "localhost:0").
    // `render` and `ready` are called on the io_context's thread, once per
    // request. Throws std::runtime_error naming the address if it cannot bind.
    MetricsServer(boost::asio::io_context& io, const std::string& listen, std::string token,
                  std::function<std::string()> render, std::function<ReadinessReport()> ready);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // start() and stop() run on the io_context's thread (or before it runs).
    void start();                // begin accepting (call once)
    void stop();                 // close the listener and every open connection
    std::uint16_t port() const;  // the bound port (useful with port 0)

private:
    struct Impl;
    std::shared_ptr<Impl> impl_; // shared with the connection coroutines
};

} // namespace releasectl
