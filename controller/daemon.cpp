#include "daemon.hpp"

#include "access_log.hpp"
#include "acme_client.hpp"
#include "admin_server.hpp"
#include "config.hpp"
#include "controller.hpp"
#include "metrics_server.hpp"
#include "notifier.hpp"
#include "ocsp_stapler.hpp"
#include "supervisor.hpp"
#include "systemd_notify.hpp"
#include "tls_loader.hpp"

#include "proxy/proxy_server.hpp"
#include "releases/layout.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <functional>
#include <optional>
#include <thread>

namespace releasectl {
namespace asio = boost::asio;

namespace {

// What /metrics shows, gathered on the control thread at scrape time.
MetricsInputs collect_metrics(const Controller& controller, const proxy::ProxyServer& server,
                              const Supervisor& supervisor) {
    MetricsInputs in;
    const RolloutState& state = controller.state();
    auto stats = server.slot_stats();
    auto table = server.route_table();
    for (std::size_t i = 0; i < table.slots.size(); ++i) {
        SlotMetrics slot;
        slot.name = table.slots[i].name;
        if (auto it = state.slot_release.find(slot.name); it != state.slot_release.end()) slot.release = it->second;
        if (auto it = state.weights.find(slot.name); it != state.weights.end()) slot.weight = it->second;
        slot.healthy = supervisor.health(slot.name) == SlotHealth::healthy;
        if (i < stats.size()) slot.stats = stats[i];
        if (auto it = controller.release_baselines().find(slot.name); it != controller.release_baselines().end())
            slot.release_baseline = it->second;
        in.slots.push_back(std::move(slot));
    }
    in.proxy = server.stats();
    if (state.rollout_active() && state.rollout && state.rollout->step >= 0)
        in.rollout_step = static_cast<unsigned>(state.rollout->step + 1);
    in.rollout_state = to_string(state.phase);
    for (auto phase : {Phase::idle, Phase::starting_candidate, Phase::running, Phase::paused, Phase::promoted,
                       Phase::rolled_back})
        in.rollout_states.emplace_back(to_string(phase));
    in.rollbacks_by_reason = controller.rollbacks_by_reason();
    in.version = RELEASECTL_VERSION;
    return in;
}

} // namespace

int run_daemon(const std::string& config_path) {
    Config config;
    std::shared_ptr<const proxy::TlsContextSet> tls;
    try {
        config = load_config(config_path);
        load_upstream_tls(config);
        std::vector<std::string> warnings;
        // HTTPS starts at once: with a placeholder until the first ACME order completes.
        if (config.tls.acme.enabled) AcmeClient::ensure_placeholder(config.tls.acme);
        tls = load_tls_contexts(config, warnings);
        for (const auto& warning : warnings) spdlog::warn("TLS: {}", warning);
    } catch (const ConfigError& e) {
        spdlog::error("{}", e.what());
        return 2;
    }
    spdlog::set_level(spdlog::level::from_str(config.log.level));
    if (auto status = releases::ensure_layout(config.root); !status) {
        spdlog::error("release store {}: {}", config.root, status.error);
        return 2;
    }

    std::optional<AccessLog> access_log;
    proxy::AccessSink sink;
    if (config.log.access_log) {
        try {
            access_log.emplace(config.log.access_log_path);
        } catch (const std::exception& e) {
            spdlog::error("{}", e.what());
            return 2;
        }
        sink = access_log->sink();
    }

    // The persisted route table is served before anything else happens: a
    // restart (or a crash mid-rollout) puts users back exactly where they were.
    RolloutState initial = Controller::load_initial_state(config);
    asio::io_context control(1);
    Supervisor supervisor(control, config);
    Notifier notifier(control, config.notify);
    std::unique_ptr<proxy::ProxyServer> server;
    std::unique_ptr<Controller> controller;
    std::unique_ptr<AdminServer> admin;
    std::unique_ptr<MetricsServer> metrics;
    std::unique_ptr<AcmeClient> acme;
    // Declared after `server`: destroyed first, it publishes into it.
    std::unique_ptr<OcspStapler> ocsp;
    bool draining = false;
    try {
        if (tls && !config.proxy.listen_tls.empty() && config.tls.ocsp_stapling) {
            OcspStapler::Options options;
            options.timing.first_retry = config.tls.ocsp_retry_interval;
            options.timing.max_retry = std::max(options.timing.max_retry, config.tls.ocsp_retry_interval);
            ocsp = std::make_unique<OcspStapler>(control, std::move(options),
                                                 [&](std::shared_ptr<const proxy::TlsContextSet> stapled) {
                                                     server->publish_tls(std::move(stapled));
                                                 });
            tls = ocsp->watch(std::move(tls)); // fetching starts with control.run(), after `server` exists
        }
        server = std::make_unique<proxy::ProxyServer>(config.proxy, Controller::route_table_for(config, initial), sink,
                                                      tls);
        controller = std::make_unique<Controller>(control, config, *server, supervisor, notifier);
        server->start();
        admin = std::make_unique<AdminServer>(control, *controller, config.admin_socket_path(), config.admin.tcp_listen,
                                              config.admin.token);
        if (!config.metrics.listen.empty()) {
            metrics = std::make_unique<MetricsServer>(
                control, config.metrics.listen, config.metrics.bearer_token,
                [&] { return render_metrics(collect_metrics(*controller, *server, supervisor)); },
                [&] {
                    ReadinessReport report;
                    report.checks.push_back({"listeners", !draining, draining ? "draining" : ""});
                    const auto& live = controller->state().live_slot;
                    bool live_ok = controller->live_slot_healthy();
                    std::string detail = live.empty() ? "no live slot yet"
                                                      : live + " is " + std::string(to_string(supervisor.health(live)));
                    report.checks.push_back({"live_slot", live_ok, live_ok ? "" : detail});
                    return report;
                });
        }
    } catch (const std::exception& e) {
        spdlog::error("cannot start: {}", e.what());
        return 2;
    }
    std::string listening;
    for (const auto& l : config.proxy.listen) listening += (listening.empty() ? "" : ", ") + l.to_string();
    for (const auto& l : config.proxy.listen_tls) listening += (listening.empty() ? "https " : ", https ") + l.to_string();
    if (tls && !config.proxy.listen_tls.empty()) spdlog::info("TLS: {}", describe_tls_contexts(*tls));
    spdlog::info("releasectl serving on {} with {} workers; admin socket {}", listening, server->worker_count(),
                 config.admin_socket_path());

    controller->start(std::move(initial));
    admin->start();
    if (metrics) {
        metrics->start();
        spdlog::info("metrics on http://{}/metrics (port {})", config.metrics.listen, metrics->port());
    }
    if (config.tls.acme.enabled) {
        AcmeClient::Hooks hooks;
        hooks.publish_challenges = [&](std::shared_ptr<const proxy::AcmeChallenges> challenges) {
            server->publish_acme_challenges(std::move(challenges));
        };
        hooks.certificate_changed = [&] {
            try {
                std::vector<std::string> warnings;
                if (auto fresh = load_tls_contexts(config, warnings)) {
                    server->publish_tls(ocsp ? ocsp->watch(fresh) : fresh);
                    spdlog::info("ACME: TLS reloaded: {}", describe_tls_contexts(*fresh));
                }
            } catch (const ConfigError& e) {
                spdlog::error("ACME: keeping the running certificates: {}", e.what());
            }
        };
        acme = std::make_unique<AcmeClient>(control, config.tls.acme, std::move(hooks));
        acme->start();
    }
    systemd::notify_ready();
    asio::steady_timer watchdog(control);
    std::function<void()> pet_watchdog = [&] {
        auto interval = systemd::watchdog_interval();
        if (!interval) return;
        systemd::notify_watchdog();
        watchdog.expires_after(*interval / 2);
        watchdog.async_wait([&](const boost::system::error_code& ec) { if (!ec) pet_watchdog(); });
    };
    pet_watchdog();

    asio::signal_set stop_signals(control, SIGTERM, SIGINT);
    asio::signal_set hup(control, SIGHUP);
    asio::signal_set usr1(control, SIGUSR1);
    std::thread drain_thread;
    stop_signals.async_wait([&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        spdlog::info("signal {}: draining (up to {})", signal, proxy::format_duration(config.proxy.timeouts.drain));
        systemd::notify_stopping();
        admin->stop();
        if (acme) acme->stop();
        if (ocsp) ocsp->stop();
        draining = true; // /health/ready turns 503 so load balancers move away first
        hup.cancel();
        usr1.cancel();
        watchdog.cancel();
        server->begin_drain();
        // The proxy drains on its own threads; the apps stop only after the
        // last in-flight request was answered.
        drain_thread = std::thread([&] {
            server->wait();
            asio::co_spawn(control, [&]() -> asio::awaitable<void> {
                co_await controller->shutdown();
                if (metrics) metrics->stop();
                control.stop();
            }, asio::detached);
        });
    });
    // The listeners are bound once; a reload swaps certificates, not sockets.
    const auto started_listen = config.proxy.listen;
    const auto started_listen_tls = config.proxy.listen_tls;
    const auto started_stapling = config.tls.ocsp_stapling;
    const auto started_retry = config.tls.ocsp_retry_interval;
    std::function<void()> wait_hup = [&] {
        hup.async_wait([&](const boost::system::error_code& ec, int) {
            if (ec) return;
            try {
                Config fresh = load_config(config_path);
                load_upstream_tls(fresh);
                // Certificates first: a file that cannot be used keeps the
                // whole running config (and the running certificates).
                std::vector<std::string> warnings;
                auto fresh_tls = load_tls_contexts(fresh, warnings);
                for (const auto& warning : warnings) spdlog::warn("TLS: {}", warning);
                if (fresh.proxy.listen_tls != started_listen_tls || fresh.proxy.listen != started_listen)
                    spdlog::warn("SIGHUP: listener changes (proxy.listen, proxy.listen_tls) take effect on restart");
                if (fresh.proxy.workers != config.proxy.workers)
                    spdlog::warn("SIGHUP: proxy.workers takes effect on restart");
                if (fresh.log.access_log != config.log.access_log || fresh.log.access_log_path != config.log.access_log_path)
                    spdlog::warn("SIGHUP: access log changes (log.access_log, log.access_log_path) take effect on restart");
                if (auto error = server->publish_settings(fresh.proxy); !error.empty())
                    throw ConfigError("proxy: " + error);
                if (fresh.tls.ocsp_stapling != started_stapling || fresh.tls.ocsp_retry_interval != started_retry)
                    spdlog::warn("SIGHUP: tls.ocsp_stapling and tls.ocsp_retry_interval take effect on restart");
                controller->reload(fresh);
                if (fresh_tls && !started_listen_tls.empty()) {
                    // With the staples still valid for these certificates: no handshake goes without.
                    server->publish_tls(ocsp ? ocsp->watch(fresh_tls) : fresh_tls);
                    spdlog::info("SIGHUP: TLS reloaded: {}", describe_tls_contexts(*fresh_tls));
                }
                std::string summary;
                for (const auto& s : server->route_table().slots)
                    summary += (summary.empty() ? "" : ", ") + s.name + "=" + std::to_string(s.weight);
                spdlog::info("SIGHUP: reloaded {}; weights {}", config_path, summary);
                config = fresh;
            } catch (const std::exception& e) {
                spdlog::error("SIGHUP: keeping the running config: {}", e.what());
            }
            wait_hup();
        });
    };
    wait_hup();
    std::function<void()> wait_usr1 = [&] {
        usr1.async_wait([&](const boost::system::error_code& ec, int) {
            if (ec) return;
            if (!access_log) {
                spdlog::info("SIGUSR1: no access log file to reopen");
            } else if (auto error = access_log->reopen(); !error.empty()) {
                spdlog::error("SIGUSR1: {}", error);
            } else {
                spdlog::info("SIGUSR1: access log reopened");
            }
            wait_usr1();
        });
    };
    wait_usr1();
    control.run();
    if (drain_thread.joinable()) drain_thread.join();
    spdlog::info("stopped");
    return 0;
}

} // namespace releasectl
