// releasectl-demo-app: the bundled backend. The README demo runs releases of it
// (a release can inject errors and latency), integration tests use it as the
// real upstream, and the benchmark puts the same binary behind every proxy.
//
// Threads: one io_context per worker thread. TCP: every worker has its own
// SO_REUSEPORT acceptor, so the kernel spreads connections and nothing is
// shared on the request path. Unix socket: worker 0 accepts and hands
// connections round-robin to the workers.
#include "controller/demo_app_options.hpp"
#include "controller/demo_app_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace releasectl::demo;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;
using error_code = boost::system::error_code;
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct Worker {
    // Declaration order is destruction order reversed: the io_context (and the
    // coroutine frames it owns) goes before the list those frames unlink from.
    ConnectionList connections;
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> keep_running{io.get_executor()};
    std::optional<tcp::acceptor> tcp_acceptor;
    std::optional<unix_socket::acceptor> unix_acceptor;
    std::thread thread;

    // Runs on this worker's thread.
    void begin_shutdown() {
        error_code ignored;
        if (tcp_acceptor) tcp_acceptor->close(ignored);
        if (unix_acceptor) unix_acceptor->close(ignored);
        connections.begin_shutdown();
        keep_running.reset();
    }
};

// Accept failures such as EMFILE are transient: wait a little and go on.
asio::awaitable<void> pause_after_accept_error() {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(std::chrono::milliseconds(20));
    co_await timer.async_wait(use_tuple);
}

asio::awaitable<void> accept_tcp(Worker& worker, const SharedAppState& app) {
    while (worker.tcp_acceptor->is_open()) {
        auto [ec, socket] = co_await worker.tcp_acceptor->async_accept(use_tuple);
        if (ec == asio::error::operation_aborted || !worker.tcp_acceptor->is_open()) break;
        if (ec) {
            co_await pause_after_accept_error();
            continue;
        }
        asio::co_spawn(worker.io, serve_connection(std::move(socket), app, worker.connections),
                       asio::detached);
    }
}

asio::awaitable<void> accept_unix(Worker& acceptor_owner, std::vector<std::unique_ptr<Worker>>& workers,
                                  const SharedAppState& app) {
    std::size_t next = 0;
    while (acceptor_owner.unix_acceptor->is_open()) {
        Worker& target = *workers[next];
        next = (next + 1) % workers.size();
        auto [ec, socket] = co_await acceptor_owner.unix_acceptor->async_accept(target.io, use_tuple);
        if (ec == asio::error::operation_aborted || !acceptor_owner.unix_acceptor->is_open()) break;
        if (ec) {
            co_await pause_after_accept_error();
            continue;
        }
        asio::co_spawn(target.io, serve_connection(std::move(socket), app, target.connections),
                       asio::detached);
    }
}

// Binds every worker's acceptor; returns an error sentence or "".
std::string open_tcp_acceptors(std::vector<std::unique_ptr<Worker>>& workers, DemoAppOptions& options) {
    error_code ec;
    auto address = asio::ip::make_address(options.listen_host, ec);
    if (ec) return "bad listen address " + options.listen_host + ": " + ec.message();
    std::uint16_t port = options.listen_port;
    for (auto& worker : workers) {
        tcp::endpoint endpoint(address, port);
        auto& acceptor = worker->tcp_acceptor.emplace(worker->io);
        acceptor.open(endpoint.protocol(), ec);
        if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) acceptor.set_option(reuse_port(true), ec);
        if (!ec) acceptor.bind(endpoint, ec);
        if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) return "cannot listen on " + options.listen_description() + ": " + ec.message();
        // Port 0: the first bind picks the port, the others share it.
        port = acceptor.local_endpoint().port();
    }
    options.listen_port = port;
    return {};
}

std::string open_unix_acceptor(Worker& worker, const std::string& path) {
    // Replace a stale socket file from an earlier run, but never a regular file.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
    error_code ec;
    auto& acceptor = worker.unix_acceptor.emplace(worker.io);
    unix_socket::endpoint endpoint(path);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return "cannot listen on unix:" + path + ": " + ec.message();
    return {};
}

} // namespace

int main(int argc, char** argv) {
    ParsedOptions parsed = parse_demo_app_options(argc, argv);
    if (!parsed.options) {
        std::fputs(parsed.message.c_str(), parsed.exit_code == 0 ? stdout : stderr);
        return parsed.exit_code;
    }
    std::signal(SIGPIPE, SIG_IGN);

    DemoAppOptions options = *parsed.options;
    std::vector<std::unique_ptr<Worker>> workers;
    for (unsigned i = 0; i < options.threads; ++i) workers.push_back(std::make_unique<Worker>());

    std::string error = options.listens_on_unix() ? open_unix_acceptor(*workers[0], options.unix_path)
                                                  : open_tcp_acceptors(workers, options);
    if (!error.empty()) {
        std::fprintf(stderr, "releasectl-demo-app: %s\n", error.c_str());
        return 1;
    }
    const SharedAppState app(options);

    if (options.listens_on_unix()) {
        asio::co_spawn(workers[0]->io, accept_unix(*workers[0], workers, app), asio::detached);
    } else {
        for (auto& worker : workers)
            asio::co_spawn(worker->io, accept_tcp(*worker, app), asio::detached);
    }

    // The main thread only waits for signals and the shutdown deadline.
    asio::io_context control{1};
    asio::signal_set signals(control, SIGTERM, SIGINT);
    asio::steady_timer deadline(control);
    auto stop_workers_now = [&] {
        for (auto& worker : workers) worker->io.stop();
    };
    signals.async_wait([&](const error_code& ec, int) {
        if (ec) return;
        for (auto& worker : workers)
            asio::post(worker->io, [w = worker.get()] { w->begin_shutdown(); });
        deadline.expires_after(app.options.shutdown_timeout);
        deadline.async_wait([&](const error_code& timer_ec) {
            if (!timer_ec) stop_workers_now();
        });
        // A second signal means "now".
        signals.async_wait([&](const error_code& again, int) {
            if (!again) stop_workers_now();
        });
    });

    std::atomic<std::size_t> running{workers.size()};
    for (auto& worker : workers) {
        worker->thread = std::thread([&, w = worker.get()] {
            w->io.run();
            if (running.fetch_sub(1) == 1) control.stop();
        });
    }

    std::fprintf(stderr, "listening on %s (release %s, slot %s, %u thread%s, error rate %g, extra latency %lld ms)\n",
                 app.options.listen_description().c_str(), app.options.release.c_str(),
                 app.options.slot.empty() ? "-" : app.options.slot.c_str(), app.options.threads,
                 app.options.threads == 1 ? "" : "s", app.options.error_ppm / 1e6,
                 static_cast<long long>(app.options.extra_latency.count()));
    std::fflush(stderr);

    control.run();
    for (auto& worker : workers) worker->thread.join();
    if (options.listens_on_unix()) ::unlink(options.unix_path.c_str());
    return 0;
}
