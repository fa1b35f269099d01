// Integration scenarios for the slot supervisor with real processes on
// 127.0.0.1 (must-show 3 and 4 of issue 3). Usage:
//   releases_supervisor_driver SCENARIO /path/to/supervisor_app.py
// SCENARIO: lifecycle | hook | crashloop | unix | orphans. Exit 0 when every check passed.
#include "controller/health_check.hpp"
#include "controller/supervisor.hpp"
#include "releases/create_release.hpp"
#include "releases/symlinks.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <netinet/in.h>
#include <sstream>
#include <sys/socket.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace rel = releasectl::releases;
using namespace releasectl;
using namespace std::chrono_literals;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    fmt::print("{} - {}\n", ok ? "ok" : "not ok", what);
    std::fflush(stdout);
    if (!ok)
        ++failures;
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_text(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
}

std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

bool group_gone(pid_t pgid) {
    return ::kill(-pgid, 0) != 0 && errno == ESRCH;
}

std::string cmdline_of(pid_t pid) {
    std::string text = read_text(fmt::format("/proc/{}/cmdline", pid));
    std::replace(text.begin(), text.end(), '\0', ' ');
    return text;
}

proxy::UpstreamAddress tcp(std::uint16_t port) {
    proxy::UpstreamAddress a;
    a.kind = proxy::UpstreamAddress::Kind::tcp;
    a.host = "127.0.0.1";
    a.port = port;
    return a;
}

// A release store in a temporary directory, removed at exit.
struct Fixture {
    fs::path tmp;
    fs::path root;
    fs::path app_source;

    explicit Fixture(const fs::path& app_py) : app_source(app_py) {
        std::string pattern = (fs::temp_directory_path() / "releasectl-sup-XXXXXX").string();
        if (!::mkdtemp(pattern.data()))
            std::abort();
        tmp = pattern;
        root = tmp / "store";
    }
    ~Fixture() {
        std::error_code ec;
        fs::remove_all(tmp, ec);
    }

    // A release holding the app plus `extra` files.
    void release(const std::string& id, const std::map<std::string, std::string>& extra = {}) {
        const fs::path src = tmp / ("src-" + id);
        fs::create_directories(src);
        fs::copy_file(app_source, src / "app.py", fs::copy_options::overwrite_existing);
        for (const auto& [name, content] : extra)
            write_text(src / name, content);
        rel::CreateOptions options;
        options.id = id;
        auto created = rel::create_release(root, src, options);
        if (!created) {
            fmt::print(stderr, "fixture: {}\n", created.error);
            std::abort();
        }
    }

    Config config(std::map<std::string, proxy::UpstreamAddress> slots) const {
        Config c;
        c.root = root.string();
        for (auto& [name, upstream] : slots)
            c.slots.push_back(SlotConfig{name, upstream});
        c.app.configured = true;
        c.app.command = "python3 app.py --port ${PORT}";
        c.app.health_path = "/up";
        c.app.health_interval = 200ms;
        c.app.health_timeout = 2s;
        c.app.healthy_threshold = 2;
        c.app.unhealthy_threshold = 3;
        c.app.start_timeout = 60s;
        c.app.stop_timeout = 5s;
        c.app.before_activate_timeout = 60s;
        c.app.max_restarts = 5;
        c.app.restart_window = 300s;
        return c;
    }
};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(asio::use_awaitable);
}

// Polls `condition` every 100 ms, up to `timeout`.
asio::awaitable<bool> wait_until(std::function<bool()> condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline)
            co_return false;
        co_await sleep_for(100ms);
    }
    co_return true;
}

struct EventLog {
    std::vector<std::pair<std::string, SlotHealth>> events;
    Supervisor::ChangeHandler handler() {
        return [this](const std::string& slot, SlotHealth h) { events.emplace_back(slot, h); };
    }
    bool saw(const std::string& slot, SlotHealth h) const {
        return std::find(events.begin(), events.end(), std::make_pair(slot, h)) != events.end();
    }
};

// Runs one scenario coroutine on a fresh io_context with an overall guard.
int run(std::function<asio::awaitable<void>(asio::io_context&)> scenario, std::chrono::seconds guard) {
    asio::io_context io;
    bool finished = false;
    asio::co_spawn(io, scenario(io), [&](std::exception_ptr e) {
        finished = true;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                check(false, fmt::format("scenario threw: {}", ex.what()));
            }
        }
        io.stop();
    });
    asio::steady_timer watchdog(io, guard);
    watchdog.async_wait([&](boost::system::error_code ec) {
        if (!ec) {
            check(false, fmt::format("scenario finished within {}s", guard.count()));
            io.stop();
        }
    });
    io.run();
    if (!finished)
        ++failures;
    fmt::print("{} check(s) failed\n", failures);
    return failures == 0 ? 0 : 1;
}

// --- must-show 3 ----------------------------------------------------------
int lifecycle(const fs::path& app_py) {
    Fixture fx(app_py);
    fx.release("r-blue");
    fx.release("r-green");
    check(rel::bind_slot(fx.root, "blue", "r-blue").ok(), "bind blue -> r-blue");
    check(rel::bind_slot(fx.root, "green", "r-green").ok(), "bind green -> r-green");
    const auto blue_port = free_port(), green_port = free_port();
    const Config config = fx.config({{"blue", tcp(blue_port)}, {"green", tcp(green_port)}});

    return run(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            EventLog log;
            Supervisor supervisor(io, config, log.handler());
            auto blue = co_await supervisor.start_slot("blue");
            check(blue.ok, "blue starts and becomes healthy: " + blue.error);
            auto green = co_await supervisor.start_slot("green");
            check(green.ok, "green starts and becomes healthy: " + green.error);
            check(supervisor.health("blue") == SlotHealth::healthy && supervisor.health("green") == SlotHealth::healthy,
                  "both slots report healthy");
            auto probe_blue = co_await probe_health(tcp(blue_port), nullptr, "/up", 5s);
            auto probe_green = co_await probe_health(tcp(green_port), nullptr, "/up", 5s);
            check(probe_blue.healthy && probe_green.healthy,
                  fmt::format("both apps answer /up on their ports ({} {})", probe_blue.error, probe_green.error));

            const auto blue_pid = supervisor.pid("blue"), green_pid = supervisor.pid("green");
            check(blue_pid && green_pid, "the supervisor reports both PIDs");
            if (!blue_pid || !green_pid)
                co_return;
            check(cmdline_of(*blue_pid).find("app.py") != std::string::npos,
                  "the reported PID is the app itself (sh exec'd it): " + cmdline_of(*blue_pid));
            const std::string blue_log = read_text(fx.root / ".releasectl/logs/blue.log");
            check(blue_log.find(fmt::format("release r-blue serving as pid {} slot blue", *blue_pid)) != std::string::npos,
                  "app output (with RELEASE_ID, SLOT) lands in .releasectl/logs/blue.log");

            fmt::print("# kill -9 {} (blue)\n", *blue_pid);
            ::kill(*blue_pid, SIGKILL);
            const bool restarted = co_await wait_until(
                [&] {
                    auto pid = supervisor.pid("blue");
                    return pid && *pid != *blue_pid && supervisor.health("blue") == SlotHealth::healthy;
                },
                90s);
            check(restarted, "blue is restarted and healthy again after kill -9");
            check(log.saw("blue", SlotHealth::restarting), "the change callback saw blue restarting");
            check(group_gone(*blue_pid), "the killed app's process group is gone (reaped)");
            auto probe_again = co_await probe_health(tcp(blue_port), nullptr, "/up", 5s);
            check(probe_again.healthy, "the restarted blue answers /up: " + probe_again.error);
            check(supervisor.status("blue").restarts_in_window == 1, "status counts one restart");
            check(supervisor.pid("green") == green_pid && supervisor.health("green") == SlotHealth::healthy,
                  "green was not disturbed");

            const auto new_blue_pid = supervisor.pid("blue");
            co_await supervisor.stop_all();
            check(supervisor.health("blue") == SlotHealth::stopped && supervisor.health("green") == SlotHealth::stopped,
                  "both slots report stopped");
            check(!supervisor.pid("blue") && !supervisor.pid("green"), "no PIDs reported after stop");
            check(new_blue_pid && group_gone(*new_blue_pid), "blue's process group is gone after stop");
            check(group_gone(*green_pid), "green's process group is gone after stop");
            auto probe_stopped = co_await probe_health(tcp(blue_port), nullptr, "/up", 2s);
            check(!probe_stopped.healthy, "nothing answers on blue's port after stop");
        },
        240s);
}

// --- must-show 4 ----------------------------------------------------------
int hook(const fs::path& app_py) {
    Fixture fx(app_py);
    std::string migrate = "#!/bin/sh\n";
    for (int i = 1; i <= 29; ++i)
        migrate += fmt::format("echo 'migrating: step {} of 29'\n", i);
    migrate += "echo 'migration 0042 failed: relation \"users\" does not exist' >&2\nexit 3\n";
    fx.release("r0");
    fx.release("r1");
    fx.release("r2", {{"bin/migrate.sh", migrate}});
    check(rel::bind_slot(fx.root, "blue", "r1").ok() && rel::bind_slot(fx.root, "green", "r0").ok() &&
              rel::set_current(fx.root, "r1").ok() && rel::set_previous(fx.root, "r0").ok(),
          "store set up: blue=r1 (current), green=r0 (previous)");
    Config config = fx.config({{"blue", tcp(free_port())}, {"green", tcp(free_port())}});
    config.app.before_activate = "sh bin/migrate.sh";

    auto links = [&] {
        std::vector<std::string> out;
        for (auto name : {"slots/blue", "slots/green", "current", "previous"})
            out.push_back(rel::read_link(fx.root / name).value_or(fs::path("<missing>")).string());
        return out;
    };
    const auto before = links();

    return run(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            Supervisor supervisor(io, config);
            auto result = co_await supervisor.activate_release("green", "r2");
            fmt::print("# error text:\n{}\n", result.error);
            check(!result.ok, "a failing before_activate aborts the activation");
            check(result.error.find("before_activate") != std::string::npos, "the error names the hook");
            check(result.error.find("sh bin/migrate.sh") != std::string::npos, "the error names the hook command");
            check(result.error.find("exited with code 3") != std::string::npos, "the error names the exit code");
            check(result.error.find("migration 0042 failed") != std::string::npos &&
                      result.error.find("step 29 of 29") != std::string::npos,
                  "the error carries the tail of the output");
            check(result.error.find("step 10 of 29") == std::string::npos, "only the tail (last 20 lines)");
            check(links() == before, "slots/blue, slots/green, current and previous are untouched");
            check(supervisor.health("green") == SlotHealth::stopped && !supervisor.pid("green"),
                  "no app was started or stopped for green");

            auto direct = co_await supervisor.run_before_activate("green", (fx.root / "releases/r2").string());
            check(!direct.ok && direct.exit_code == 3 && !direct.timed_out, "HookResult carries exit code 3");
            check(std::count(direct.output_tail.begin(), direct.output_tail.end(), '\n') == 20,
                  "HookResult.output_tail holds the last 20 lines");

            // A hook that hangs is killed after before_activate_timeout, with its whole group.
            Config slow = config;
            slow.app.before_activate = "echo hook pid $$; sleep 120; echo never";
            slow.app.before_activate_timeout = 1s;
            supervisor.reconfigure(slow);
            auto timed = co_await supervisor.run_before_activate("green", (fx.root / "releases/r2").string());
            check(!timed.ok && timed.timed_out && timed.error.find("timed out after") != std::string::npos,
                  "a hanging hook times out: " + timed.error);
            pid_t hook_pid = 0;
            std::sscanf(timed.output_tail.c_str(), "hook pid %d", &hook_pid);
            check(hook_pid > 0 && group_gone(hook_pid), "the timed-out hook's process group is gone");
            check(links() == before, "still untouched after the timeout");

            // A passing hook: the slot is bound and started, the rest stays as it was.
            Config good = config;
            good.app.before_activate = "echo migrated ${RELEASE_ID} for $SLOT on port $PORT";
            supervisor.reconfigure(good);
            auto ok = co_await supervisor.activate_release("green", "r2");
            check(ok.ok, "with a passing hook green activates r2: " + ok.error);
            auto after = links();
            check(after[1] == "../releases/r2" && after[0] == before[0] && after[2] == before[2] && after[3] == before[3],
                  "only slots/green moved");
            check(read_text(fx.root / ".releasectl/logs/green.log").find("migrated r2 for green on port") !=
                      std::string::npos,
                  "hook output (with expanded ${RELEASE_ID}) lands in the slot log");
            co_await supervisor.stop_all();
        },
        240s);
}

// --- crash handling: fail fast at start, give up after max_restarts -------
int crashloop(const fs::path& app_py) {
    Fixture fx(app_py);
    fx.release("r1", {{".env", "# app settings\nGREETING=hello-from-env-file\n"}});
    check(rel::bind_slot(fx.root, "blue", "r1").ok(), "bind blue -> r1");
    const auto port = free_port();
    Config config = fx.config({{"blue", tcp(port)}});
    config.app.env_file = ".env";
    config.app.max_restarts = 2;
    config.app.healthy_threshold = 1;

    return run(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            EventLog log;
            Supervisor supervisor(io, config, log.handler());

            Config broken = config;
            broken.app.command = "python3 app.py --port ${PORT} --fail-at-start";
            supervisor.reconfigure(broken);
            auto failed = co_await supervisor.start_slot("blue");
            fmt::print("# error text:\n{}\n", failed.error);
            check(!failed.ok && failed.error.find("exited with code 4 before becoming healthy") != std::string::npos,
                  "an app that exits at start fails start_slot at once, naming the exit code");
            check(failed.error.find("boom: DATABASE_URL is not set") != std::string::npos,
                  "the start error carries the app's last output");
            check(supervisor.health("blue") == SlotHealth::failed, "the slot reports failed");

            supervisor.reconfigure(config);
            auto started = co_await supervisor.start_slot("blue");
            check(started.ok, "the healthy app starts: " + started.error);
            check(read_text(fx.root / ".releasectl/logs/blue.log").find("greeting hello-from-env-file") !=
                      std::string::npos,
                  "env_file variables reach the app");

            std::vector<pid_t> pids;
            for (int crash = 1; crash <= 3; ++crash) {
                auto pid = supervisor.pid("blue");
                if (!pid) {
                    check(false, "a PID before crash " + std::to_string(crash));
                    co_return;
                }
                pids.push_back(*pid);
                fmt::print("# crash {} of pid {}\n", crash, *pid);
                co_await probe_health(tcp(port), nullptr, "/crash", 2s);
                if (crash < 3) {
                    const bool back = co_await wait_until(
                        [&] {
                            auto now = supervisor.pid("blue");
                            return now && *now != *pid && supervisor.health("blue") == SlotHealth::healthy;
                        },
                        90s);
                    check(back, fmt::format("restarted after crash {}", crash));
                }
            }
            const bool gave_up = co_await wait_until([&] { return supervisor.health("blue") == SlotHealth::crashing; }, 60s);
            check(gave_up, "after max_restarts (2) the slot is reported crashing");
            check(log.saw("blue", SlotHealth::crashing), "the change callback saw crashing");
            co_await sleep_for(1500ms);
            check(supervisor.health("blue") == SlotHealth::crashing && !supervisor.pid("blue"),
                  "a crashing slot is not restarted again");
            bool all_gone = true;
            for (pid_t pid : pids)
                all_gone = all_gone && group_gone(pid);
            check(all_gone, "no process of any attempt is left");
            check(supervisor.status("blue").last_error.find("crashing") != std::string::npos,
                  "status explains: " + supervisor.status("blue").last_error);
            co_await supervisor.stop_all();
        },
        240s);
}

// --- a slot on a Unix socket ------------------------------------------------
int unix_socket(const fs::path& app_py) {
    Fixture fx(app_py);
    fx.release("r1");
    check(rel::bind_slot(fx.root, "blue", "r1").ok(), "bind blue -> r1");
    proxy::UpstreamAddress upstream;
    upstream.kind = proxy::UpstreamAddress::Kind::unix_socket;
    upstream.path = (fx.tmp / "blue.sock").string();
    Config config = fx.config({{"blue", upstream}});
    config.app.command = "python3 app.py";

    return run(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            EventLog log;
            Supervisor supervisor(io, config, log.handler());
            auto started = co_await supervisor.start_slot("blue");
            check(started.ok, "an app on SOCKET_PATH becomes healthy over the Unix socket: " + started.error);
            EventLog* events = &log;
            auto pid = supervisor.pid("blue");
            if (!pid)
                co_return;
            // Persistent unhealthiness (alive, but /up says 503) also leads to a restart.
            auto sick = co_await probe_health(upstream, nullptr, "/sick", 2s);
            check(sick.healthy, "the app turned sick: " + sick.error);
            const bool replaced = co_await wait_until(
                [&] {
                    auto now = supervisor.pid("blue");
                    return now && *now != *pid && supervisor.health("blue") == SlotHealth::healthy;
                },
                90s);
            check(replaced, "an app failing unhealthy_threshold checks is restarted and healthy again");
            check(events->saw("blue", SlotHealth::unhealthy), "the change callback saw unhealthy first");
            check(group_gone(*pid), "the sick app's process group is gone");
            auto new_pid = supervisor.pid("blue");
            co_await supervisor.stop_slot("blue");
            check(new_pid && group_gone(*new_pid), "stopped, process group gone");
            check(!fs::exists(fx.tmp / "blue.sock") || !(co_await probe_health(upstream, nullptr, "/up", 1s)).healthy,
                  "nothing answers on the socket after stop");
        },
        120s);
}

// --- what an app leaves in its process group goes with it ------------------
int orphans(const fs::path& app_py) {
    Fixture fx(app_py);
    fx.release("r1");
    check(rel::bind_slot(fx.root, "blue", "r1").ok(), "bind blue -> r1");
    const auto port = free_port();
    Config config = fx.config({{"blue", tcp(port)}});
    // A helper process in the app's group, and an app that ignores SIGTERM.
    config.app.command = "sleep 300 & exec python3 app.py --port ${PORT} --ignore-sigterm";
    config.app.stop_timeout = 1s;

    return run(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            Supervisor supervisor(io, config);
            auto started = co_await supervisor.start_slot("blue");
            check(started.ok, "blue starts: " + started.error);
            auto pid = supervisor.pid("blue");
            if (!pid)
                co_return;
            check(::kill(-*pid, 0) == 0, "the app's group exists");
            ::kill(*pid, SIGKILL); // the helper `sleep` is orphaned into our care
            const bool back = co_await wait_until(
                [&] {
                    auto now = supervisor.pid("blue");
                    return now && *now != *pid && supervisor.health("blue") == SlotHealth::healthy;
                },
                90s);
            check(back, "restarted after kill -9");
            check(group_gone(*pid), "the orphaned helper of the killed app was terminated and reaped");

            auto second = supervisor.pid("blue");
            const auto before_stop = std::chrono::steady_clock::now();
            co_await supervisor.stop_slot("blue");
            const auto took = std::chrono::steady_clock::now() - before_stop;
            check(second && group_gone(*second), "an app ignoring SIGTERM is SIGKILLed, group and helper gone");
            check(took >= 1s, fmt::format("SIGKILL came only after stop_timeout ({} ms)",
                                          std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
        },
        120s);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        fmt::print(stderr, "usage: {} lifecycle|hook|crashloop|unix|orphans APP_PY\n", argv[0]);
        return 2;
    }
    spdlog::set_level(spdlog::level::debug);
    const std::string scenario = argv[1];
    const fs::path app_py = fs::absolute(argv[2]);
    if (scenario == "lifecycle")
        return lifecycle(app_py);
    if (scenario == "hook")
        return hook(app_py);
    if (scenario == "crashloop")
        return crashloop(app_py);
    if (scenario == "unix")
        return unix_socket(app_py);
    if (scenario == "orphans")
        return orphans(app_py);
    fmt::print(stderr, "unknown scenario {}\n", scenario);
    return 2;
}
