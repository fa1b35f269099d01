#include "worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <stdexcept>

namespace releasectl::proxy {
namespace {
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::milliseconds kSweepInterval{100};
} // namespace

// ---------------------------------------------------------------- pool

void UpstreamPool::SessionFree::operator()(ssl_session_st* session) const { SSL_SESSION_free(session); }

void UpstreamPool::configure(const UpstreamAddress& address, std::shared_ptr<const UpstreamTlsClient> tls,
                             std::size_t max_idle, Duration idle_timeout) {
    max_idle_ = max_idle;
    idle_timeout_ = idle_timeout;
    if (resolved_ && address == address_ && tls == tls_) return;
    idle_.clear();
    session_.reset();
    address_ = address;
    tls_ = std::move(tls);
    resolved_ = false;
    if (address.tls && !tls_) {
        spdlog::error("upstream {}: no TLS settings for an https:// upstream", address.to_string());
        return;
    }
    if (address.kind == UpstreamAddress::Kind::unix_socket) {
        endpoint_ = asio::generic::stream_protocol::endpoint(asio::local::stream_protocol::endpoint(address.path));
        resolved_ = true;
        return;
    }
    boost::system::error_code ec;
    std::string host = address.host == "localhost" ? "127.0.0.1" : address.host;
    auto ip = asio::ip::make_address(host, ec);
    if (ec) {
        spdlog::error("upstream {}: '{}' is not a numeric address", address.to_string(), address.host);
        return;
    }
    endpoint_ = asio::generic::stream_protocol::endpoint(tcp::endpoint(ip, address.port));
    resolved_ = true;
}

std::unique_ptr<UpstreamConnection> UpstreamPool::take(Clock::time_point now) {
    while (!idle_.empty()) {
        auto connection = std::move(idle_.back());
        idle_.pop_back();
        if (!connection->socket.is_open()) continue;
        if (now - connection->idle_since >= idle_timeout_) continue;
        // An idle connection must be silent: a FIN/RST means the app closed it
        // (keep-alive timeout, restart), and any byte is an unsolicited
        // response that would be mistaken for the answer to our next request
        // (response-queue poisoning). One non-blocking peek catches both.
        char byte;
        ssize_t n = ::recv(connection->socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) continue;
        connection->reused = true;
        return connection;
    }
    return nullptr;
}

void UpstreamPool::give_back(std::unique_ptr<UpstreamConnection> connection, Clock::time_point now) {
    if (!connection->socket.is_open() || !connection->in.empty()) return;
    if (connection->tls) {
        SSL* ssl = connection->tls->native_handle();
        if (connection->new_tls_session) {
            // Read after a whole response, so TLS 1.3 tickets have arrived.
            connection->new_tls_session = false;
            // Kept as a copy: this connection will be freed without
            // close_notify, which marks its own session unresumable.
            const SSL_SESSION* session = SSL_get0_session(ssl);
            if (session && SSL_SESSION_is_resumable(session)) {
                if (SSL_SESSION* copy = SSL_SESSION_dup(session)) session_.reset(copy);
            }
        }
        // Bytes already past the socket (inside OpenSSL or its BIO) would be
        // read as the answer to the next request: the same poisoning guard as
        // take()'s peek, one layer up.
        if (SSL_has_pending(ssl) || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0) return;
    }
    if (idle_.size() >= max_idle_) return;
    connection->idle_since = now;
    idle_.push_back(std::move(connection));
}

bool UpstreamPool::should_log_tls_failure(Clock::time_point now) {
    constexpr std::chrono::seconds kInterval{10};
    if (last_tls_failure_log_ != Clock::time_point{} && now - last_tls_failure_log_ < kInterval) return false;
    last_tls_failure_log_ = now;
    return true;
}

void UpstreamPool::expire(Clock::time_point now) {
    std::erase_if(idle_, [&](const auto& c) { return now - c->idle_since >= idle_timeout_; });
}

// ---------------------------------------------------------------- worker

Worker::Worker(unsigned index, SettingsPublisher& settings_publisher, RouteTablePublisher& publisher,
               TlsPublisher& tls_publisher, AcmePublisher& acme_publisher, MetricsShard& shard,
               const AccessSink& access_sink)
    : index_(index), settings_publisher_(settings_publisher), publisher_(publisher), tls_publisher_(tls_publisher),
      acme_publisher_(acme_publisher), shard_(shard),
      access_sink_(access_sink), rng_(std::random_device{}() ^ (static_cast<std::uint64_t>(index) << 32)) {}

void Worker::add_listener(const ListenAddress& address, bool tls) {
    boost::system::error_code ec;
    std::string host = address.host == "localhost" ? "127.0.0.1" : address.host;
    auto ip = asio::ip::make_address(host, ec);
    if (ec) throw std::runtime_error("listen address '" + address.to_string() + "': not a numeric IP address");
    tcp::endpoint endpoint(ip, address.port);
    auto acceptor = std::make_unique<tcp::acceptor>(ioc_);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
        int one = 1;
        if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
            ec = boost::system::error_code(errno, boost::system::system_category());
    }
    if (!ec && ip.is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + address.to_string() + ": " + ec.message());
    listeners_.push_back(Listener{std::move(acceptor), tls});
}

UpstreamPool& Worker::pool_for(const RouteTable& table, int slot, const ProxySettings& settings) {
    auto& pool = pools_[static_cast<std::size_t>(slot)];
    const auto& upstream = table.slots[static_cast<std::size_t>(slot)].upstream;
    const auto& tls = table.slots[static_cast<std::size_t>(slot)].upstream_tls;
    if (!pool.resolved() || !(pool.address() == upstream) || pool.tls() != tls.get())
        pool.configure(upstream, tls, settings.upstream_max_idle_per_slot, settings.timeouts.upstream_idle);
    else
        pool.set_limits(settings.upstream_max_idle_per_slot, settings.timeouts.upstream_idle);
    return pool;
}

void Worker::run() {
    for (auto& listener : listeners_) asio::co_spawn(ioc_, accept_loop(listener), asio::detached);
    asio::co_spawn(ioc_, sweep_loop(), asio::detached);
    ioc_.run();
}

asio::awaitable<void> Worker::accept_loop(Listener& listener) {
    asio::steady_timer backoff(ioc_);
    while (!draining_) {
        auto [ec, socket] = co_await listener.acceptor->async_accept(nothrow_awaitable);
        if (ec) {
            if (draining_ || ec == asio::error::operation_aborted) break;
            // EMFILE/ENFILE: back off briefly instead of spinning.
            spdlog::warn("accept failed: {}", ec.message());
            backoff.expires_after(std::chrono::milliseconds(50));
            co_await backoff.async_wait(nothrow_awaitable);
            continue;
        }
        if (!listener.tls) {
            asio::co_spawn(ioc_, serve_client(*this, std::move(socket)), asio::detached);
            continue;
        }
        // The contexts published right now; a reload later does not touch
        // this connection (it holds its own reference).
        std::shared_ptr<const TlsContextSet> contexts = tls_publisher_.load(index_);
        if (!contexts) continue; // never published: nothing to offer, drop the connection
        asio::co_spawn(ioc_, serve_tls_client(*this, std::move(socket), std::move(contexts)), asio::detached);
    }
}

asio::awaitable<void> Worker::sweep_loop() {
    asio::steady_timer timer(ioc_);
    for (;;) {
        timer.expires_after(kSweepInterval);
        co_await timer.async_wait(nothrow_awaitable);
        coarse_now_ = Clock::now();
        // Keeps route-table reclamation moving even when this worker is idle.
        (void)publisher_.load(index_);
        (void)tls_publisher_.load(index_);
        (void)acme_publisher_.load(index_);
        (void)settings_publisher_.load(index_);
        for (auto& pool : pools_) pool.expire(coarse_now_);
        if (draining_ && coarse_now_ >= drain_deadline_) {
            for (auto it = watched_.begin(); it != watched_.end();) (it++)->on_force_close();
        }
        for (auto it = watched_.begin(); it != watched_.end();) {
            Watched& item = *it++;
            if (item.upstream_deadline <= coarse_now_) {
                item.upstream_deadline = Clock::time_point::max();
                item.on_upstream_deadline();
            }
            if (item.client_deadline <= coarse_now_) {
                item.client_deadline = Clock::time_point::max();
                item.on_client_deadline();
            }
        }
        if (draining_ && watched_.empty()) break;
    }
    for (auto& pool : pools_) pool.clear();
}

void Worker::begin_drain() {
    asio::post(ioc_, [this] { drain_now(); });
}

void Worker::drain_now() {
    if (draining_) return;
    draining_ = true;
    drain_deadline_ = Clock::now() + settings_snapshot()->settings.timeouts.drain;
    for (auto& listener : listeners_) {
        boost::system::error_code ignored;
        listener.acceptor->close(ignored);
    }
    for (auto it = watched_.begin(); it != watched_.end();) (it++)->on_drain();
}

} // namespace releasectl::proxy
