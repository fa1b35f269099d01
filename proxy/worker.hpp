#pragma once
// One data-plane worker: its own io_context, acceptors (SO_REUSEPORT), upstream
// pools, metric shard and routing state. Internal to proxy/.
#include "acme_challenges.hpp"
#include "byte_buffer.hpp"
#include "epoch_publisher.hpp"
#include "metrics_shard.hpp"
#include "proxy_server.hpp"
#include "route_table.hpp"
#include "settings.hpp"
#include "slot_chooser.hpp"
#include "trusted_proxies.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include <chrono>
#include <memory>
#include <random>
#include <vector>

namespace releasectl::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using UpstreamSocket = asio::generic::stream_protocol::socket;

class TlsContextSet;
class UpstreamTlsClient;
using TlsPublisher = EpochPublisher<TlsContextSet>;

// The proxy settings a SIGHUP can change (everything but listeners and the
// worker count), with what is derived from them. A request runs on one
// snapshot from its first byte to its last.
struct SettingsSnapshot {
    ProxySettings settings;
    TrustedProxies trusted;
};
using SettingsPublisher = EpochPublisher<SettingsSnapshot>;
using AcmePublisher = EpochPublisher<AcmeChallenges>;

// Something with a deadline the worker's sweeper enforces (client sessions).
// A deadline is a plain store, so arming it per I/O costs nothing; the sweeper
// checks all of them every tick.
class Watched : public boost::intrusive::list_base_hook<
                    boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
public:
    virtual ~Watched() = default;
    // One deadline per direction: a request body can stream up while the
    // response streams down, each with its own timeout.
    Clock::time_point client_deadline = Clock::time_point::max();
    Clock::time_point upstream_deadline = Clock::time_point::max();
    virtual void on_client_deadline() = 0;   // abort client I/O (close)
    virtual void on_upstream_deadline() = 0; // abort upstream I/O (close)
    virtual void on_drain() = 0;    // drain began: close if idle, end tunnels
    virtual void on_force_close() = 0; // drain timeout: close everything
};
using WatchedList = boost::intrusive::list<Watched, boost::intrusive::constant_time_size<false>>;

// TLS to an https:// upstream, layered over the connection's own socket (so
// pool checks and close() work on the socket the same way for both).
using UpstreamTlsStream = asio::ssl::stream<UpstreamSocket&>;

struct UpstreamConnection {
    explicit UpstreamConnection(asio::io_context& ioc) : socket(ioc), in(16 * 1024) {}
    UpstreamSocket socket;
    std::unique_ptr<UpstreamTlsStream> tls; // declared after socket: destroyed first
    ByteBuffer in;
    Clock::time_point idle_since{};
    bool reused = false;
    bool new_tls_session = false; // full handshake done here: its session can be kept for resumption
};

class UpstreamPool {
public:
    UpstreamPool() = default;
    void configure(const UpstreamAddress& address, std::shared_ptr<const UpstreamTlsClient> tls,
                   std::size_t max_idle, Duration idle_timeout);
    const UpstreamAddress& address() const { return address_; }
    bool resolved() const { return resolved_; }
    const asio::generic::stream_protocol::endpoint& endpoint() const { return endpoint_; }
    bool is_tcp() const { return address_.kind == UpstreamAddress::Kind::tcp; }
    // Null for a plain upstream.
    const UpstreamTlsClient* tls() const { return tls_.get(); }
    void set_limits(std::size_t max_idle, Duration idle_timeout) {
        max_idle_ = max_idle;
        idle_timeout_ = idle_timeout;
    }

    // An idle connection that still looks alive, or null.
    std::unique_ptr<UpstreamConnection> take(Clock::time_point now);
    void give_back(std::unique_ptr<UpstreamConnection> connection, Clock::time_point now);
    void expire(Clock::time_point now);
    void clear() { idle_.clear(); }

    // TLS session resumption: the last resumable session a new connection can offer.
    ssl_session_st* resumable_session() const { return session_.get(); }
    // Handshake failures are logged at most once per interval per worker and slot.
    bool should_log_tls_failure(Clock::time_point now);

private:
    struct SessionFree { void operator()(ssl_session_st* session) const; };
    UpstreamAddress address_;
    std::shared_ptr<const UpstreamTlsClient> tls_;
    std::unique_ptr<ssl_session_st, SessionFree> session_;
    Clock::time_point last_tls_failure_log_{};
    asio::generic::stream_protocol::endpoint endpoint_;
    bool resolved_ = false;
    std::size_t max_idle_ = 0;
    Duration idle_timeout_{0};
    std::vector<std::unique_ptr<UpstreamConnection>> idle_; // LIFO: hottest first
};

class Worker {
public:
    Worker(unsigned index, SettingsPublisher& settings_publisher, RouteTablePublisher& publisher,
           TlsPublisher& tls_publisher, AcmePublisher& acme_publisher, MetricsShard& shard,
           const AccessSink& access_sink);
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Throws on bind failure. A TLS listener hands each connection the TLS
    // contexts published at accept time.
    void add_listener(const ListenAddress& address, bool tls = false);
    void run();                                      // thread body
    void begin_drain();                              // thread-safe

    // --- used by sessions (worker thread only) ---
    asio::io_context& io() { return ioc_; }
    // The settings published now. Valid until this worker's next load: a
    // session keeps its own copy of the shared_ptr across awaits.
    const std::shared_ptr<const SettingsSnapshot>& settings_snapshot() { return settings_publisher_.load(index_); }
    const RouteTable& route_table() { return publisher_.load(index_); }
    // The key authorization for an HTTP-01 token, or null. Valid until this
    // worker's next load: copy it before awaiting anything.
    const std::string* acme_answer(std::string_view token) {
        const auto& challenges = acme_publisher_.load(index_);
        return challenges ? challenges->find(token) : nullptr;
    }
    MetricsShard& shard() { return shard_; }
    UpstreamPool& pool_for(const RouteTable& table, int slot, const ProxySettings& settings);
    SmoothWeightedRoundRobin& round_robin() { return round_robin_; }
    const AccessSink& access_sink() const { return access_sink_; }
    bool draining() const { return draining_; }
    Clock::time_point now() const { return coarse_now_; }
    std::uint64_t random64() { return rng_(); }
    void watch(Watched& item) { watched_.push_back(item); }

private:
    struct Listener {
        std::unique_ptr<tcp::acceptor> acceptor;
        bool tls = false;
    };
    asio::awaitable<void> accept_loop(Listener& listener);
    asio::awaitable<void> sweep_loop();
    void drain_now();

    unsigned index_;
    SettingsPublisher& settings_publisher_;
    RouteTablePublisher& publisher_;
    TlsPublisher& tls_publisher_;
    AcmePublisher& acme_publisher_;
    MetricsShard& shard_;
    const AccessSink& access_sink_;
    asio::io_context ioc_{1};
    std::vector<Listener> listeners_;
    std::array<UpstreamPool, kMaxSlots> pools_;
    SmoothWeightedRoundRobin round_robin_;
    WatchedList watched_;
    std::mt19937_64 rng_;
    Clock::time_point coarse_now_ = Clock::now();
    Clock::time_point drain_deadline_ = Clock::time_point::max();
    bool draining_ = false;
};

// Run one client connection to completion (client_session.cpp). A TLS
// connection keeps `contexts` (its certificates) alive for its whole life.
asio::awaitable<void> serve_client(Worker& worker, tcp::socket socket);
asio::awaitable<void> serve_tls_client(Worker& worker, tcp::socket socket,
                                       std::shared_ptr<const TlsContextSet> contexts);

} // namespace releasectl::proxy
