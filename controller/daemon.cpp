#include "daemon.hpp"

#include "access_log.hpp"
#include "config.hpp"
#include "route_builder.hpp"

#include "proxy/proxy_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <functional>
#include <optional>
#include <thread>

namespace releasectl {

int run_daemon(const std::string& config_path) {
    Config config;
    try {
        config = load_config(config_path);
    } catch (const ConfigError& e) {
        spdlog::error("{}", e.what());
        return 2;
    }
    spdlog::set_level(spdlog::level::from_str(config.log.level));

    std::optional<AccessLog> access_log;
    proxy::AccessSink sink;
    if (config.log.access_log) {
        access_log.emplace(config.log.access_log_path);
        sink = access_log->sink();
    }

    auto table = build_route_table(config, config.weights);
    std::unique_ptr<proxy::ProxyServer> server;
    try {
        server = std::make_unique<proxy::ProxyServer>(config.proxy, table, sink);
    } catch (const std::exception& e) {
        spdlog::error("cannot start: {}", e.what());
        return 2;
    }
    server->start();
    std::string listening;
    for (const auto& l : config.proxy.listen) listening += (listening.empty() ? "" : ", ") + l.to_string();
    spdlog::info("releasectl serving on {} with {} workers", listening, server->worker_count());

    boost::asio::io_context control(1);
    boost::asio::signal_set stop_signals(control, SIGTERM, SIGINT);
    boost::asio::signal_set hup(control, SIGHUP);
    boost::asio::signal_set usr1(control, SIGUSR1);
    stop_signals.async_wait([&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        spdlog::info("signal {}: draining (up to {})", signal, proxy::format_duration(config.proxy.timeouts.drain));
        server->begin_drain();
        hup.cancel();
        usr1.cancel();
    });
    std::function<void()> wait_hup = [&] {
        hup.async_wait([&](const boost::system::error_code& ec, int) {
            if (ec) return;
            try {
                Config fresh = load_config(config_path);
                auto fresh_table = build_route_table(fresh, fresh.weights);
                server->publish(fresh_table);
                std::string summary;
                for (const auto& s : fresh_table.slots)
                    summary += (summary.empty() ? "" : ", ") + s.name + "=" + std::to_string(s.weight);
                spdlog::info("SIGHUP: reloaded {}; weights {}", config_path, summary);
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
            if (access_log) access_log->reopen();
            spdlog::info("SIGUSR1: access log reopened");
            wait_usr1();
        });
    };
    wait_usr1();
    std::thread control_thread([&] { control.run(); });
    server->wait();
    control.stop();
    control_thread.join();
    spdlog::info("stopped");
    return 0;
}

} // namespace releasectl
