// Test driver: serves synthetic metrics through the real MetricsServer so the
// exposition can be checked by promtool and scraped by a real Prometheus
// without a daemon. Counters grow a little on every scrape (like traffic).
//
//   metrics_server_driver --listen 127.0.0.1:PORT [--token T] [--not-ready]
//
// The latency samples are deterministic; --print-p95 prints each slot's own
// p95 (what the controller would judge with) and exits.
#include "controller/metrics_render.hpp"
#include "controller/metrics_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <random>
#include <string>
#include <vector>

using namespace releasectl;

namespace {

struct SyntheticSlot {
    const char* name;
    const char* release;
    double weight;
    double median_seconds; // lognormal latencies
    double error_share;
};

// Adds `n` requests with lognormal latencies (deterministic sequence).
void add_traffic(SlotMetrics& slot, std::mt19937_64& rng, double median, double error_share, int n) {
    std::lognormal_distribution<double> latency(std::log(median), 0.5);
    std::bernoulli_distribution error(error_share);
    for (int i = 0; i < n; ++i) {
        auto micros = static_cast<std::uint64_t>(std::llround(std::min(latency(rng), 150.0) * 1e6));
        ++slot.stats.latency[proxy::LatencyBuckets::index_for(micros)];
        slot.stats.latency_sum_micros += micros;
        ++slot.stats.status_class[error(rng) ? 5 : 2];
        slot.stats.bytes_out += 512;
    }
}

} // namespace

int main(int argc, char** argv) {
    std::string listen = "127.0.0.1:9180";
    std::string token;
    bool ready = true;
    bool print_p95 = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--listen" && i + 1 < argc) listen = argv[++i];
        else if (arg == "--token" && i + 1 < argc) token = argv[++i];
        else if (arg == "--not-ready") ready = false;
        else if (arg == "--print-p95") print_p95 = true;
        else {
            std::cerr << "usage: metrics_server_driver --listen HOST:PORT [--token T] [--not-ready] [--print-p95]\n";
            return 2;
        }
    }

    const std::vector<SyntheticSlot> synthetic{{"blue", "20240101120000", 75, 0.12, 0.01},
                                               {"green", "20240102130000 \"rc\"\\x", 25, 0.9, 0.05}};
    MetricsInputs inputs;
    std::mt19937_64 rng(42);
    for (const auto& s : synthetic) {
        SlotMetrics slot;
        slot.name = s.name;
        slot.release = s.release;
        slot.weight = s.weight;
        slot.healthy = true;
        add_traffic(slot, rng, s.median_seconds, s.error_share, 20000);
        slot.stats.upstream_errors = {1, 0, 2, 0};
        inputs.slots.push_back(std::move(slot));
    }
    if (print_p95) {
        for (const auto& slot : inputs.slots) std::printf("%s %.9f\n", slot.name.c_str(), slot.stats.latency_quantile(0.95));
        return 0;
    }
    inputs.rollout_step = 2;
    inputs.rollout_state = "running";
    inputs.rollout_states = {"idle", "starting_candidate", "running", "paused", "promoted", "rolled_back"};
    inputs.rollbacks_by_reason = {{"analysis", 1}};
    inputs.version = "0.0.0-driver";
    inputs.proxy.connections_active = 3;

    boost::asio::io_context io(1);
    std::unique_ptr<MetricsServer> server;
    try {
        server = std::make_unique<MetricsServer>(
            io, listen, token,
            [&] {
                // Traffic keeps flowing with the same shape, so rates and
                // quantiles over any window equal the cumulative ones.
                for (std::size_t i = 0; i < inputs.slots.size(); ++i)
                    add_traffic(inputs.slots[i], rng, synthetic[i].median_seconds, synthetic[i].error_share, 2000);
                inputs.proxy.connections_total += 1;
                return render_metrics(inputs);
            },
            [&] {
                return ReadinessReport{{{"listeners", true, ""}, {"live_slot", ready, ready ? "" : "blue is unhealthy"}}};
            });
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
    server->start();
    std::printf("listening on port %u\n", static_cast<unsigned>(server->port()));
    std::fflush(stdout);
    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    // Only stop(): run() returns once the listener AND every open (keep-alive)
    // connection are closed, which is what the integration test checks.
    signals.async_wait([&](const boost::system::error_code&, int) { server->stop(); });
    io.run();
    return 0;
}
