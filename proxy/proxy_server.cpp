#include "proxy_server.hpp"

#include "tls_context.hpp"
#include "worker.hpp"

#include <spdlog/spdlog.h>

#include <thread>

namespace releasectl::proxy {

struct ProxyServer::Impl {
    ProxySettings settings; // as started: listeners and worker count never change
    AccessSink access_sink;
    unsigned worker_count;
    SettingsPublisher settings_publisher;
    RouteTablePublisher publisher;
    TlsPublisher tls_publisher;
    AcmePublisher acme_publisher;
    std::vector<std::unique_ptr<MetricsShard>> shards;
    std::vector<std::unique_ptr<Worker>> workers;
    std::vector<std::thread> threads;

    Impl(ProxySettings s, AccessSink sink, unsigned count)
        : settings(std::move(s)), access_sink(std::move(sink)), worker_count(count), settings_publisher(count),
          publisher(count),
          tls_publisher(count), acme_publisher(count) {}
};

static unsigned resolve_worker_count(unsigned configured) {
    if (configured != 0) return configured;
    unsigned cores = std::thread::hardware_concurrency();
    return cores == 0 ? 1 : cores;
}

ProxyServer::ProxyServer(ProxySettings settings, RouteTable initial, AccessSink access_sink,
                         std::shared_ptr<const TlsContextSet> tls) {
    unsigned count = resolve_worker_count(settings.workers);
    impl_ = std::make_unique<Impl>(std::move(settings), std::move(access_sink), count);
    if (initial.slots.size() > kMaxSlots) throw std::runtime_error("at most 8 slots are supported");
    impl_->publisher.publish(std::move(initial));
    if (!impl_->settings.listen_tls.empty() && !tls) {
        auto loaded = TlsContextSet::load(impl_->settings.certificates);
        if (loaded.error) throw std::runtime_error("TLS certificate: " + loaded.error->message);
        tls = std::move(loaded.contexts);
    }
    if (tls) impl_->tls_publisher.publish(std::move(tls));
    if (auto error = publish_settings(impl_->settings); !error.empty()) throw std::runtime_error(error);
    for (unsigned i = 0; i < count; ++i) {
        impl_->shards.push_back(std::make_unique<MetricsShard>());
        impl_->workers.push_back(std::make_unique<Worker>(i, impl_->settings_publisher, impl_->publisher, impl_->tls_publisher,
                                                          impl_->acme_publisher, *impl_->shards.back(),
                                                          impl_->access_sink));
        for (const auto& address : impl_->settings.listen) impl_->workers.back()->add_listener(address);
        for (const auto& address : impl_->settings.listen_tls)
            impl_->workers.back()->add_listener(address, /*tls=*/true);
    }
}

ProxyServer::~ProxyServer() {
    if (!impl_) return;
    for (auto& worker : impl_->workers) worker->begin_drain();
    wait();
}

std::string ProxyServer::publish_settings(ProxySettings settings) {
    auto snapshot = std::make_shared<SettingsSnapshot>();
    for (const auto& entry : settings.trusted_proxies) {
        if (auto error = snapshot->trusted.add(entry); !error.empty()) return error;
    }
    // Sockets and threads exist once: what they were started with stays true.
    settings.listen = impl_->settings.listen;
    settings.listen_tls = impl_->settings.listen_tls;
    settings.workers = impl_->settings.workers;
    snapshot->settings = std::move(settings);
    impl_->settings_publisher.publish(std::move(snapshot));
    return {};
}

void ProxyServer::start() {
    for (auto& worker : impl_->workers) impl_->threads.emplace_back([w = worker.get()] { w->run(); });
}

std::uint64_t ProxyServer::publish(RouteTable table) { return impl_->publisher.publish(std::move(table)); }

RouteTable ProxyServer::route_table() const { return impl_->publisher.current(); }

void ProxyServer::publish_tls(std::shared_ptr<const TlsContextSet> tls) {
    if (tls) impl_->tls_publisher.publish(std::move(tls));
}

void ProxyServer::publish_acme_challenges(std::shared_ptr<const AcmeChallenges> challenges) {
    impl_->acme_publisher.publish(std::move(challenges));
}

std::vector<SlotStats> ProxyServer::slot_stats() const {
    auto table = impl_->publisher.current();
    std::vector<SlotStats> out(table.slots.size());
    for (const auto& shard : impl_->shards)
        for (std::size_t i = 0; i < out.size(); ++i) shard->slots[i].add_to(out[i]);
    return out;
}

ProxyStats ProxyServer::stats() const {
    ProxyStats out;
    for (const auto& shard : impl_->shards) {
        out.connections_active += shard->connections_active.load(std::memory_order_relaxed);
        out.connections_total += shard->connections_total.load(std::memory_order_relaxed);
        out.requests_rejected += shard->requests_rejected.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < out.tls_handshakes.size(); ++i)
            out.tls_handshakes[i] += shard->tls_handshakes[i].load(std::memory_order_relaxed);
    }
    return out;
}

static_assert(std::tuple_size_v<decltype(MetricsShard::tls_handshakes)> ==
              static_cast<std::size_t>(TlsHandshakeResult::kCount));

unsigned ProxyServer::worker_count() const { return impl_->worker_count; }

void ProxyServer::begin_drain() {
    for (auto& worker : impl_->workers) worker->begin_drain();
}

void ProxyServer::wait() {
    for (auto& thread : impl_->threads)
        if (thread.joinable()) thread.join();
    impl_->threads.clear();
}

} // namespace releasectl::proxy
