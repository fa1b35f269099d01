#include "controller/supervisor.hpp"

#include "controller/health_check.hpp"
#include "releases/env_file.hpp"
#include "releases/layout.hpp"
#include "releases/release_id.hpp"
#include "releases/rotating_log.hpp"
#include "releases/symlinks.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <linux/close_range.h>
#include <set>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace releasectl {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using proxy::Duration;
using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

std::string_view to_string(SlotHealth health) {
    switch (health) {
    case SlotHealth::stopped: return "stopped";
    case SlotHealth::starting: return "starting";
    case SlotHealth::healthy: return "healthy";
    case SlotHealth::unhealthy: return "unhealthy";
    case SlotHealth::restarting: return "restarting";
    case SlotHealth::crashing: return "crashing";
    case SlotHealth::failed: return "failed";
    }
    return "unknown";
}

// ---------------------------------------------------------------------------
// Restart accounting

RestartBudget::RestartBudget(unsigned max_restarts, Duration window) : max_restarts_(max_restarts), window_(window) {}

void RestartBudget::set_limits(unsigned max_restarts, Duration window) {
    max_restarts_ = max_restarts;
    window_ = window;
}

void RestartBudget::reset() {
    restarts_.clear();
}

unsigned RestartBudget::recent(TimePoint now) const {
    return static_cast<unsigned>(
        std::count_if(restarts_.begin(), restarts_.end(), [&](TimePoint t) { return now - t < window_; }));
}

std::optional<Duration> RestartBudget::next(TimePoint now) {
    while (!restarts_.empty() && now - restarts_.front() >= window_)
        restarts_.pop_front();
    if (restarts_.size() >= max_restarts_)
        return std::nullopt;
    const auto earlier = std::min<std::size_t>(restarts_.size(), 16);
    restarts_.push_back(now);
    return std::min(max_backoff, Duration(initial_backoff.count() << earlier));
}

namespace {

// ---------------------------------------------------------------------------
// Sleeping that other parts can cut short (a child exiting, a stop).

class Waker {
public:
    asio::awaitable<void> sleep_until(TimePoint deadline) {
        auto executor = co_await asio::this_coro::executor;
        asio::steady_timer timer(executor, deadline);
        Registration registration(*this, &timer);
        boost::system::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    void wake_all() {
        for (auto* timer : sleepers_)
            timer->cancel();
    }

private:
    // Unregisters even when the coroutine frame is destroyed mid-sleep.
    struct Registration {
        Waker& waker;
        asio::steady_timer* timer;
        Registration(Waker& w, asio::steady_timer* t) : waker(w), timer(t) { waker.sleepers_.push_back(timer); }
        ~Registration() { std::erase(waker.sleepers_, timer); }
    };
    std::vector<asio::steady_timer*> sleepers_;
};

// The last output of a process, for error messages.
class OutputTail {
public:
    void append(std::string_view data) {
        data_.append(data);
        if (data_.size() > kKeepBytes)
            data_.erase(0, data_.size() - kKeepBytes);
    }
    void clear() { data_.clear(); }
    std::string last_lines(std::size_t count) const {
        std::vector<std::string_view> lines;
        std::string_view rest(data_);
        while (!rest.empty()) {
            auto end = rest.find('\n');
            std::string_view line = rest.substr(0, end);
            if (!line.empty() && line.back() == '\r')
                line.remove_suffix(1);
            lines.push_back(line.substr(0, 400));
            rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
        }
        while (!lines.empty() && lines.back().empty())
            lines.pop_back();
        std::string out;
        for (std::size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i) {
            out.append(lines[i]);
            out.push_back('\n');
        }
        return out;
    }

private:
    static constexpr std::size_t kKeepBytes = 64 * 1024;
    std::string data_;
};

std::string indented_output(const std::string& tail) {
    if (tail.empty())
        return "; no output";
    std::string out = "; last output:";
    std::string_view rest(tail);
    while (!rest.empty()) {
        auto end = rest.find('\n');
        out += "\n    ";
        out += rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    }
    return out;
}

// ---------------------------------------------------------------------------
// Child processes

struct ChildProcess {
    pid_t pid = -1; // also its process group id (setsid)
    std::string command;
    bool exited = false;
    bool status_known = false;
    int wait_status = 0;
    Waker waker;                   // woken on exit
    std::function<void()> on_exit; // e.g. wake the slot's supervision loop
};

std::string describe_exit(const ChildProcess& child) {
    if (!child.status_known)
        return "exited";
    if (WIFEXITED(child.wait_status))
        return fmt::format("exited with code {}", WEXITSTATUS(child.wait_status));
    if (WIFSIGNALED(child.wait_status)) {
        const int sig = WTERMSIG(child.wait_status);
        const char* name = sigabbrev_np(sig);
        return fmt::format("was killed by signal {}{}", sig, name ? fmt::format(" (SIG{})", name) : "");
    }
    return "exited";
}

// `sh -c "exec CMD"` for a plain command line: the app itself becomes the
// process we watch and signal, with no shell waiting in between.
std::string exec_if_simple(const std::string& command) {
    if (command.find_first_of(";&|()`\n") != std::string::npos)
        return command;
    const auto start = command.find_first_not_of(" \t");
    if (start == std::string::npos)
        return command;
    const auto end = command.find_first_of(" \t", start);
    const std::string first = command.substr(start, end == std::string::npos ? std::string::npos : end - start);
    static const std::set<std::string> shell_words{
        "if",   "then", "else", "elif",  "fi",    "case",  "esac",   "for",   "while", "until", "do",   "done",
        "{",    "}",    "!",    "exec",  "cd",    "export", "set",   "eval",  ".",     "source", "ulimit",
        "umask", "trap", "wait", "read", "unset", "alias", "shift",  "return", "exit", "time",  "[[",   "command"};
    if (first.find('=') != std::string::npos || shell_words.count(first))
        return command;
    return "exec " + command;
}

struct SpawnRequest {
    std::string command;
    fs::path cwd;
    std::vector<std::string> env; // "KEY=VALUE"
};

struct Spawned {
    pid_t pid = -1;
    int output_fd = -1; // read end of the child's stdout+stderr pipe
    std::string error;
};

// fork + exec /bin/sh -c in a new session. Between fork and exec the child
// only makes async-signal-safe calls (the daemon has other threads).
Spawned spawn_process(const SpawnRequest& request) {
    Spawned result;
    std::string command = request.command;
    std::string shell = "/bin/sh", dash_c = "-c";
    std::array<char*, 4> argv{shell.data(), dash_c.data(), command.data(), nullptr};
    std::vector<std::string> env_storage = request.env;
    std::vector<char*> envp;
    for (auto& entry : env_storage)
        envp.push_back(entry.data());
    envp.push_back(nullptr);
    const std::string cwd = request.cwd.string();
    struct rlimit fd_limit {};
    ::getrlimit(RLIMIT_NOFILE, &fd_limit);
    const int max_fd = static_cast<int>(std::min<rlim_t>(fd_limit.rlim_cur, 65536));

    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    int output[2] = {-1, -1};
    int report[2] = {-1, -1}; // exec-or-error channel: EOF = exec succeeded
    if (devnull < 0 || ::pipe2(output, O_CLOEXEC) != 0 || ::pipe2(report, O_CLOEXEC) != 0) {
        result.error = fmt::format("cannot create pipes: {}", std::strerror(errno));
        for (int fd : {devnull, output[0], output[1], report[0], report[1]})
            if (fd >= 0)
                ::close(fd);
        return result;
    }
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
        auto fail = [&](int step) {
            int payload[2] = {step, errno};
            (void)!::write(report[1], payload, sizeof payload);
            ::_exit(127);
        };
        ::setsid();
        ::prctl(PR_SET_PDEATHSIG, SIGTERM); // the daemon dying takes its apps along
        if (::getppid() != parent)
            ::_exit(127);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        struct sigaction default_action {};
        default_action.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; ++sig) // e.g. the daemon ignores SIGPIPE; apps must not inherit that
            ::sigaction(sig, &default_action, nullptr);
        if (::dup2(devnull, 0) < 0 || ::dup2(output[1], 1) < 0 || ::dup2(output[1], 2) < 0)
            fail(0);
        if (::chdir(cwd.c_str()) != 0)
            fail(1);
        // Nothing of the daemon (listening sockets, admin socket) leaks into the app.
        if (::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
            for (int fd = 3; fd < max_fd; ++fd)
                ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        ::execve(argv[0], argv.data(), envp.data());
        fail(2);
    }
    ::close(devnull);
    ::close(output[1]);
    ::close(report[1]);
    if (pid < 0) {
        result.error = fmt::format("fork failed: {}", std::strerror(errno));
        ::close(output[0]);
        ::close(report[0]);
        return result;
    }
    int payload[2] = {0, 0};
    ssize_t got;
    do {
        got = ::read(report[0], payload, sizeof payload);
    } while (got < 0 && errno == EINTR);
    ::close(report[0]);
    if (got == static_cast<ssize_t>(sizeof payload)) {
        static constexpr const char* steps[] = {"redirect output", "chdir", "exec /bin/sh"};
        result.error = fmt::format("{}{}: {}", steps[payload[0]], payload[0] == 1 ? " " + cwd : std::string(),
                                   std::strerror(payload[1]));
        ::close(output[0]);
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return result;
    }
    result.pid = pid;
    result.output_fd = output[0];
    return result;
}

// Awaits the exit of `child` (pidfd, or polling waitpid(WNOHANG)) and reaps it.
asio::awaitable<void> watch_exit(std::shared_ptr<ChildProcess> child) {
    auto executor = co_await asio::this_coro::executor;
    boost::system::error_code ec;
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, child->pid, 0));
    if (fd >= 0) {
        asio::posix::stream_descriptor pidfd(executor, fd);
        co_await pidfd.async_wait(asio::posix::stream_descriptor::wait_read,
                                  asio::redirect_error(asio::use_awaitable, ec));
    }
    asio::steady_timer poll(executor);
    for (;;) {
        int status = 0;
        const pid_t reaped = ::waitpid(child->pid, &status, WNOHANG);
        if (reaped == child->pid) {
            child->wait_status = status;
            child->status_known = true;
            break;
        }
        if (reaped < 0 && errno == EINTR)
            continue;
        if (reaped < 0) // ECHILD: reaped by the Supervisor's destructor
            break;
        poll.expires_after(std::chrono::milliseconds(100));
        co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    child->exited = true;
    child->waker.wake_all();
    if (child->on_exit)
        child->on_exit();
}

bool group_exists(pid_t pgid) {
    return ::kill(-pgid, 0) == 0 || errno == EPERM;
}

void reap_group_members(pid_t pgid) {
    while (::waitpid(-pgid, nullptr, WNOHANG) > 0) {
    }
}

// After the group leader is gone: members it left behind get SIGTERM, then
// SIGKILL after `grace`; as their subreaper we reap them.
asio::awaitable<void> clear_group(pid_t pgid, Duration grace) {
    reap_group_members(pgid);
    if (!group_exists(pgid))
        co_return;
    ::kill(-pgid, SIGTERM);
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer poll(executor);
    auto deadline = SteadyClock::now() + grace;
    bool killed = false;
    boost::system::error_code ec;
    for (;;) {
        reap_group_members(pgid);
        if (!group_exists(pgid))
            co_return;
        if (SteadyClock::now() >= deadline) {
            if (killed) {
                spdlog::warn("process group {} survives SIGKILL", pgid);
                co_return;
            }
            ::kill(-pgid, SIGKILL);
            killed = true;
            deadline = SteadyClock::now() + std::chrono::seconds(5);
        }
        poll.expires_after(std::chrono::milliseconds(50));
        co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

// SIGTERM to the whole group, SIGKILL after stop_timeout, then the leftovers.
asio::awaitable<void> terminate(std::shared_ptr<ChildProcess> child, Duration stop_timeout, std::string_view what) {
    if (!child->exited) {
        ::kill(-child->pid, SIGTERM);
        const auto deadline = SteadyClock::now() + stop_timeout;
        while (!child->exited && SteadyClock::now() < deadline)
            co_await child->waker.sleep_until(deadline);
        if (!child->exited) {
            spdlog::warn("{} (pid {}) did not stop within {} of SIGTERM; sending SIGKILL", what, child->pid,
                         proxy::format_duration(stop_timeout));
            ::kill(-child->pid, SIGKILL);
            const auto hard_deadline = SteadyClock::now() + std::chrono::seconds(10);
            while (!child->exited && SteadyClock::now() < hard_deadline)
                co_await child->waker.sleep_until(hard_deadline);
        }
    }
    co_await clear_group(child->pid, std::min(stop_timeout, Duration(5'000)));
}

// Reads a child's output until EOF (or until the pipe is closed).
struct OutputPump {
    std::shared_ptr<asio::posix::stream_descriptor> pipe;
    bool done = false;
    Waker waker;
};

asio::awaitable<void> pump_output(std::shared_ptr<OutputPump> pump, std::function<void(std::string_view)> sink) {
    std::array<char, 16 * 1024> buffer;
    boost::system::error_code ec;
    for (;;) {
        const std::size_t n =
            co_await pump->pipe->async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
        if (n > 0)
            sink(std::string_view(buffer.data(), n));
        if (ec)
            break;
    }
    pump->done = true;
    pump->waker.wake_all();
}

// Gives a pump `grace` to reach EOF (the output written just before an exit),
// then closes it (a daemonised grandchild may hold the pipe forever).
asio::awaitable<void> finish_pump(std::shared_ptr<OutputPump> pump, Duration grace) {
    if (!pump)
        co_return;
    const auto deadline = SteadyClock::now() + grace;
    while (!pump->done && SteadyClock::now() < deadline)
        co_await pump->waker.sleep_until(deadline);
    boost::system::error_code ec;
    pump->pipe->close(ec);
}

enum class Mode { command, hooks, unmanaged };

Mode mode_of(const AppConfig& app) {
    if (!app.command.empty())
        return Mode::command;
    if (!app.start.empty())
        return Mode::hooks;
    return Mode::unmanaged;
}

std::string timestamp() {
    return releases::format_utc(std::chrono::system_clock::now());
}

} // namespace

// ---------------------------------------------------------------------------
// Per-slot state

struct Supervisor::Slot {
    Slot(asio::io_context& io_context, const SlotConfig& slot, const AppConfig& app_config, const fs::path& store_root,
         ChangeHandler handler)
        : io(io_context), name(slot.name), upstream(slot.upstream), upstream_tls(slot.upstream_tls), app(app_config),
          root(store_root),
          on_change(std::move(handler)), budget(app_config.max_restarts, app_config.restart_window),
          log(releases::StorePaths(store_root).logs_dir() / (slot.name + ".log"), app_config.log_max_bytes,
              app_config.log_keep) {}

    asio::io_context& io;
    std::string name;
    proxy::UpstreamAddress upstream;
    std::shared_ptr<const proxy::UpstreamTlsClient> upstream_tls; // https:// upstreams
    AppConfig app;
    fs::path root;
    ChangeHandler on_change;

    std::atomic<SlotHealth> health{SlotHealth::stopped};
    std::atomic<pid_t> current_pid{0};
    unsigned generation = 0; // bumped by every start/stop; stale loops see it and leave
    std::shared_ptr<ChildProcess> child;       // the app (command mode)
    std::shared_ptr<OutputPump> app_output;
    std::shared_ptr<ChildProcess> hook_child;  // a running hook, killed on teardown
    std::string release_id;
    fs::path release_dir;
    RestartBudget budget;
    Waker waker; // cut short the supervision loop's sleeps (child exit, stop)
    releases::RotatingLog log;
    OutputTail tail;
    std::string last_error;
    std::string last_probe_error;

    void write_log(std::string_view text) {
        if (auto status = log.write(text); !status)
            spdlog::warn("slot {}: {}", name, status.error);
    }
};

namespace {

using Slot = Supervisor::Slot;

void set_health(Slot& slot, SlotHealth health) {
    const SlotHealth old = slot.health.exchange(health);
    if (old == health)
        return;
    spdlog::info("slot {}: {} -> {}", slot.name, to_string(old), to_string(health));
    if (slot.on_change)
        slot.on_change(slot.name, health);
}

struct Environment {
    std::vector<std::string> entries;
    std::map<std::string, std::string> vars;
    std::string error;
};

// Inherited environment < env_file < PORT / SOCKET_PATH, SLOT, RELEASE_ID, RELEASE_DIR.
Environment build_environment(const Slot& slot, const fs::path& release_dir) {
    Environment env;
    for (char** entry = environ; entry && *entry; ++entry) {
        std::string_view text(*entry);
        const auto eq = text.find('=');
        if (eq != std::string_view::npos && eq > 0)
            env.vars[std::string(text.substr(0, eq))] = std::string(text.substr(eq + 1));
    }
    // The daemon's own systemd plumbing is not the app's: a NOTIFY_SOCKET or
    // LISTEN_FDS left in place would let the app talk to our unit or grab fds.
    for (const char* name : {"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC",
                             "WATCHDOG_PID"})
        env.vars.erase(name);
    if (!slot.app.env_file.empty()) {
        const fs::path file =
            fs::path(slot.app.env_file).is_absolute() ? fs::path(slot.app.env_file) : release_dir / slot.app.env_file;
        auto vars = releases::read_env_file(file);
        if (!vars) {
            env.error = fmt::format("env_file: {}", vars.error);
            return env;
        }
        for (auto& [key, value] : *vars)
            env.vars[key] = value;
    }
    if (slot.upstream.kind == proxy::UpstreamAddress::Kind::unix_socket) {
        env.vars.erase("PORT");
        env.vars["SOCKET_PATH"] = slot.upstream.path;
    } else {
        env.vars["PORT"] = std::to_string(slot.upstream.port);
    }
    env.vars["SLOT"] = slot.name;
    env.vars["RELEASE_ID"] = release_dir.filename().string();
    env.vars["RELEASE_DIR"] = release_dir.string();
    for (auto& [key, value] : env.vars)
        env.entries.push_back(key + "=" + value);
    return env;
}

std::string expand_command(const std::string& command, const Environment& env) {
    return releases::expand_variables(command, [&](std::string_view name) -> std::optional<std::string> {
        auto it = env.vars.find(std::string(name));
        if (it == env.vars.end())
            return std::nullopt;
        return it->second;
    });
}

// Launches the app of a command-mode slot. Empty string = launched.
std::string launch_app(const std::shared_ptr<Slot>& slot) {
    Environment env = build_environment(*slot, slot->release_dir);
    if (!env.error.empty())
        return env.error;
    SpawnRequest request{exec_if_simple(expand_command(slot->app.command, env)), slot->release_dir, env.entries};
    Spawned spawned = spawn_process(request);
    if (!spawned.error.empty())
        return fmt::format("cannot start `{}`: {}", slot->app.command, spawned.error);

    auto child = std::make_shared<ChildProcess>();
    child->pid = spawned.pid;
    child->command = slot->app.command;
    std::weak_ptr<Slot> weak = slot;
    child->on_exit = [weak] {
        if (auto s = weak.lock())
            s->waker.wake_all();
    };
    slot->child = child;
    slot->current_pid = spawned.pid;
    slot->tail.clear();
    slot->write_log(fmt::format("[{}] releasectl: slot {} starting release {} (pid {}): {}\n", timestamp(), slot->name,
                                slot->release_id, spawned.pid, request.command));

    auto pump = std::make_shared<OutputPump>();
    pump->pipe = std::make_shared<asio::posix::stream_descriptor>(slot->io, spawned.output_fd);
    slot->app_output = pump;
    asio::co_spawn(
        slot->io,
        pump_output(pump,
                    [weak](std::string_view data) {
                        if (auto s = weak.lock()) {
                            s->write_log(data);
                            s->tail.append(data);
                        }
                    }),
        asio::detached);
    asio::co_spawn(slot->io, watch_exit(child), asio::detached);
    spdlog::info("slot {}: started `{}` (pid {}) in {}", slot->name, slot->app.command, spawned.pid,
                 slot->release_dir.string());
    return {};
}

// A hook command: run to completion in `dir` with the slot's environment.
asio::awaitable<HookResult> run_hook(std::shared_ptr<Slot> slot, std::string hook_name, std::string command,
                                     fs::path dir, Duration timeout) {
    HookResult result;
    const std::string label = fmt::format("{} hook `{}`", hook_name, command);
    Environment env = build_environment(*slot, dir);
    if (!env.error.empty()) {
        result.error = fmt::format("{} cannot run for slot {}: {}", label, slot->name, env.error);
        co_return result;
    }
    Spawned spawned = spawn_process({exec_if_simple(expand_command(command, env)), dir, env.entries});
    if (!spawned.error.empty()) {
        result.error = fmt::format("{} cannot run for slot {}: {}", label, slot->name, spawned.error);
        co_return result;
    }
    auto child = std::make_shared<ChildProcess>();
    child->pid = spawned.pid;
    child->command = command;
    slot->hook_child = child;
    slot->write_log(
        fmt::format("[{}] releasectl: {} hook (pid {}) in {}: {}\n", timestamp(), hook_name, spawned.pid, dir.string(), command));
    spdlog::info("slot {}: running {} in {}", slot->name, label, dir.string());

    auto tail = std::make_shared<OutputTail>();
    auto pump = std::make_shared<OutputPump>();
    pump->pipe = std::make_shared<asio::posix::stream_descriptor>(slot->io, spawned.output_fd);
    std::weak_ptr<Slot> weak = slot;
    asio::co_spawn(slot->io,
                   pump_output(pump,
                               [weak, tail](std::string_view data) {
                                   tail->append(data);
                                   if (auto s = weak.lock())
                                       s->write_log(data);
                               }),
                   asio::detached);
    asio::co_spawn(slot->io, watch_exit(child), asio::detached);

    const auto deadline = SteadyClock::now() + timeout;
    while (!child->exited && SteadyClock::now() < deadline)
        co_await child->waker.sleep_until(deadline);
    if (!child->exited) {
        result.timed_out = true;
        co_await terminate(child, std::min(slot->app.stop_timeout, Duration(10'000)), label);
    } else {
        co_await clear_group(child->pid, Duration(2'000)); // nothing a hook started may outlive it
    }
    co_await finish_pump(pump, Duration(2'000));
    if (slot->hook_child == child)
        slot->hook_child.reset();

    if (child->status_known && WIFEXITED(child->wait_status))
        result.exit_code = WEXITSTATUS(child->wait_status);
    if (child->status_known && WIFSIGNALED(child->wait_status))
        result.signal = WTERMSIG(child->wait_status);
    result.output_tail = tail->last_lines(20);
    result.ok = !result.timed_out && result.exit_code == 0;
    const std::string outcome =
        result.timed_out ? fmt::format("timed out after {}", proxy::format_duration(timeout)) : describe_exit(*child);
    slot->write_log(fmt::format("[{}] releasectl: {} hook {}\n", timestamp(), hook_name, outcome));
    if (!result.ok)
        result.error =
            fmt::format("{} {} (slot {}, in {}){}", label, outcome, slot->name, dir.string(), indented_output(result.output_tail));
    co_return result;
}

// Launch for either mode; empty string = launched.
asio::awaitable<std::string> launch(std::shared_ptr<Slot> slot) {
    switch (mode_of(slot->app)) {
    case Mode::command:
        co_return launch_app(slot);
    case Mode::hooks: {
        auto hook = co_await run_hook(slot, "start", slot->app.start, slot->release_dir, slot->app.start_timeout);
        co_return hook.ok ? std::string() : hook.error;
    }
    case Mode::unmanaged:
        co_return std::string();
    }
    co_return std::string();
}

bool app_exited(const Slot& slot) {
    return slot.child && slot.child->exited;
}

enum class WaitOutcome { healthy, exited, timed_out, superseded };

// Probes every health_interval until healthy_threshold consecutive 2xx.
asio::awaitable<WaitOutcome> await_healthy(std::shared_ptr<Slot> slot, unsigned generation, TimePoint deadline) {
    unsigned successes = 0;
    for (;;) {
        if (slot->generation != generation)
            co_return WaitOutcome::superseded;
        if (app_exited(*slot))
            co_return WaitOutcome::exited;
        if (SteadyClock::now() >= deadline)
            co_return WaitOutcome::timed_out;
        auto probe = co_await probe_health(slot->upstream, slot->upstream_tls, slot->app.health_path, slot->app.health_timeout);
        if (slot->generation != generation)
            co_return WaitOutcome::superseded;
        if (app_exited(*slot))
            co_return WaitOutcome::exited;
        if (probe.healthy) {
            if (++successes >= std::max(1u, slot->app.healthy_threshold))
                co_return WaitOutcome::healthy;
        } else {
            successes = 0;
            slot->last_probe_error = probe.error;
        }
        co_await slot->waker.sleep_until(std::min(deadline, SteadyClock::now() + slot->app.health_interval));
    }
}

enum class WatchOutcome { exited, unhealthy, superseded };

// Watches a healthy slot until its app exits or fails unhealthy_threshold checks in a row.
asio::awaitable<WatchOutcome> watch_running(std::shared_ptr<Slot> slot, unsigned generation) {
    unsigned failures = 0;
    for (;;) {
        const auto next_probe = SteadyClock::now() + slot->app.health_interval;
        while (SteadyClock::now() < next_probe && slot->generation == generation && !app_exited(*slot))
            co_await slot->waker.sleep_until(next_probe);
        if (slot->generation != generation)
            co_return WatchOutcome::superseded;
        if (app_exited(*slot))
            co_return WatchOutcome::exited;
        auto probe = co_await probe_health(slot->upstream, slot->upstream_tls, slot->app.health_path, slot->app.health_timeout);
        if (slot->generation != generation)
            co_return WatchOutcome::superseded;
        if (app_exited(*slot))
            co_return WatchOutcome::exited;
        if (probe.healthy) {
            failures = 0;
            continue;
        }
        slot->last_probe_error = probe.error;
        if (++failures >= std::max(1u, slot->app.unhealthy_threshold))
            co_return WatchOutcome::unhealthy;
    }
}

// Stops the slot's current app process (if any) and forgets it.
asio::awaitable<void> stop_app(std::shared_ptr<Slot> slot) {
    auto child = slot->child;
    if (!child)
        co_return;
    co_await terminate(child, slot->app.stop_timeout, fmt::format("slot {} app", slot->name));
    co_await finish_pump(slot->app_output, Duration(1'000));
    if (slot->child == child) {
        slot->child.reset();
        slot->current_pid = 0;
    }
}

// Keeps a started slot running: restart with backoff on crash or persistent
// unhealthiness; give up (crashing) beyond max_restarts within restart_window.
asio::awaitable<void> supervise(std::shared_ptr<Slot> slot, unsigned generation) {
    const Mode mode = mode_of(slot->app);
    for (;;) {
        const WatchOutcome outcome = co_await watch_running(slot, generation);
        if (outcome == WatchOutcome::superseded)
            co_return;
        std::string reason;
        if (outcome == WatchOutcome::exited) {
            co_await finish_pump(slot->app_output, Duration(1'000));
            reason = fmt::format("app (pid {}) {}", slot->child->pid, describe_exit(*slot->child));
            spdlog::warn("slot {}: {}{}", slot->name, reason, indented_output(slot->tail.last_lines(5)));
        } else {
            reason = fmt::format("app failed {} health checks in a row (last: {})", slot->app.unhealthy_threshold,
                                 slot->last_probe_error);
            spdlog::warn("slot {}: {}", slot->name, reason);
            set_health(*slot, SlotHealth::unhealthy);
        }
        slot->last_error = reason;
        if (mode == Mode::unmanaged) { // not ours to restart: report and keep probing
            const auto back = co_await await_healthy(slot, generation, TimePoint::max());
            if (back != WaitOutcome::healthy)
                co_return;
            set_health(*slot, SlotHealth::healthy);
            continue;
        }

        for (;;) { // restart attempts until healthy again or the budget runs out
            const auto delay = slot->budget.next(SteadyClock::now());
            if (!delay) {
                spdlog::error("slot {}: app keeps failing ({} restarts within {}); not restarting it again. Last: {}",
                              slot->name, slot->app.max_restarts, proxy::format_duration(slot->app.restart_window),
                              reason);
                slot->last_error = fmt::format("crashing: {} restarts within {}; last: {}", slot->app.max_restarts,
                                               proxy::format_duration(slot->app.restart_window), reason);
                set_health(*slot, SlotHealth::crashing);
                co_await stop_app(slot);
                co_return;
            }
            set_health(*slot, SlotHealth::restarting);
            spdlog::warn("slot {}: restarting in {} (restart {} of at most {} within {})", slot->name,
                         proxy::format_duration(*delay), slot->budget.recent(SteadyClock::now()),
                         slot->app.max_restarts, proxy::format_duration(slot->app.restart_window));
            co_await stop_app(slot);
            const auto resume_at = SteadyClock::now() + *delay;
            while (slot->generation == generation && SteadyClock::now() < resume_at)
                co_await slot->waker.sleep_until(resume_at);
            if (slot->generation != generation)
                co_return;
            if (std::string error = co_await launch(slot); !error.empty()) {
                if (slot->generation != generation)
                    co_return;
                reason = error;
                slot->last_error = error;
                spdlog::warn("slot {}: {}", slot->name, error);
                continue;
            }
            if (slot->generation != generation)
                co_return;
            set_health(*slot, SlotHealth::starting);
            const auto started =
                co_await await_healthy(slot, generation, SteadyClock::now() + slot->app.start_timeout);
            if (started == WaitOutcome::superseded)
                co_return;
            if (started == WaitOutcome::healthy) {
                spdlog::info("slot {}: app healthy again after restart (pid {})", slot->name,
                             slot->current_pid.load());
                set_health(*slot, SlotHealth::healthy);
                break;
            }
            if (started == WaitOutcome::exited) {
                co_await finish_pump(slot->app_output, Duration(1'000));
                reason = fmt::format("app (pid {}) {} before becoming healthy", slot->child->pid,
                                     describe_exit(*slot->child));
            } else {
                reason = fmt::format("app not healthy within {} (last: {})",
                                     proxy::format_duration(slot->app.start_timeout), slot->last_probe_error);
            }
            slot->last_error = reason;
            spdlog::warn("slot {}: {}", slot->name, reason);
        }
    }
}

void kill_and_reap_now(const std::shared_ptr<ChildProcess>& child) {
    if (!child)
        return;
    if (!child->exited) {
        ::kill(-child->pid, SIGKILL);
        int status = 0;
        while (::waitpid(child->pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    ::kill(-child->pid, SIGKILL);
    for (int i = 0; i < 200 && group_exists(child->pid); ++i) { // bounded: 2 s
        reap_group_members(child->pid);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

} // namespace

// ---------------------------------------------------------------------------
// Supervisor

Supervisor::Supervisor(asio::io_context& io, const Config& config, ChangeHandler on_change)
    : io_(io), root_(config.root), on_change_(std::move(on_change)) {
    // Orphans of our apps get reparented to us (not to a PID 1 that may never
    // reap them), so that a stopped slot really leaves no process behind.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    for (const SlotConfig& slot : config.slots)
        slots_.emplace(slot.name, std::make_shared<Slot>(io_, slot, config.app, config.root, on_change_));
}

Supervisor::~Supervisor() {
    for (auto& [name, slot] : slots_) {
        ++slot->generation;
        slot->on_change = nullptr;
        kill_and_reap_now(slot->child);
        kill_and_reap_now(slot->hook_child);
        slot->waker.wake_all();
    }
}

std::shared_ptr<Supervisor::Slot> Supervisor::find(const std::string& slot) const {
    auto it = slots_.find(slot);
    return it == slots_.end() ? nullptr : it->second;
}

void Supervisor::reconfigure(const Config& config) {
    for (const SlotConfig& slot_config : config.slots) {
        auto slot = find(slot_config.name);
        if (!slot) {
            slots_.emplace(slot_config.name,
                           std::make_shared<Slot>(io_, slot_config, config.app, config.root, on_change_));
            continue;
        }
        slot->app = config.app;
        slot->upstream = slot_config.upstream;
        slot->upstream_tls = slot_config.upstream_tls;
        slot->budget.set_limits(config.app.max_restarts, config.app.restart_window);
        slot->log.set_limits(config.app.log_max_bytes, config.app.log_keep);
    }
}

SlotHealth Supervisor::health(const std::string& slot) const {
    auto s = find(slot);
    return s ? s->health.load() : SlotHealth::stopped;
}

std::optional<pid_t> Supervisor::pid(const std::string& slot) const {
    auto s = find(slot);
    if (!s || s->current_pid.load() == 0)
        return std::nullopt;
    return s->current_pid.load();
}

SlotStatus Supervisor::status(const std::string& slot) const {
    SlotStatus status;
    auto s = find(slot);
    if (!s)
        return status;
    status.health = s->health.load();
    status.pid = pid(slot);
    status.release_id = s->release_id;
    status.release_dir = s->release_dir.string();
    status.restarts_in_window = s->budget.recent(SteadyClock::now());
    status.last_error = s->last_error;
    return status;
}

asio::awaitable<StartResult> Supervisor::start_slot(std::string name) {
    auto slot = find(name);
    if (!slot)
        co_return StartResult{false, fmt::format("unknown slot '{}'", name)};
    if (slot->child || slot->health.load() != SlotHealth::stopped)
        co_await stop_slot(name);
    const unsigned generation = ++slot->generation;
    slot->budget.reset();
    slot->last_error.clear();
    slot->last_probe_error.clear();
    auto fail = [&](std::string error) {
        slot->last_error = error;
        spdlog::error("{}", error);
        set_health(*slot, SlotHealth::failed);
        return StartResult{false, std::move(error)};
    };

    const fs::path link = releases::StorePaths(root_).slot_link(name);
    std::error_code ec;
    const fs::path dir = fs::canonical(link, ec);
    if (ec || !fs::is_directory(dir, ec))
        co_return fail(fmt::format("slot {} has no release to run: {} does not lead to a release directory", name,
                                   link.string()));
    slot->release_dir = dir;
    slot->release_id = releases::linked_release_id(link).value_or(dir.filename().string());
    set_health(*slot, SlotHealth::starting);

    if (std::string error = co_await launch(slot); !error.empty()) {
        if (slot->generation != generation)
            co_return StartResult{false, fmt::format("start of slot {} was interrupted", name)};
        co_return fail(fmt::format("slot {}: {}", name, error));
    }
    const auto deadline = SteadyClock::now() + slot->app.start_timeout;
    const WaitOutcome outcome = co_await await_healthy(slot, generation, deadline);
    switch (outcome) {
    case WaitOutcome::healthy:
        spdlog::info("slot {}: release {} is healthy{}", name, slot->release_id,
                     slot->current_pid ? fmt::format(" (pid {})", slot->current_pid.load()) : std::string());
        set_health(*slot, SlotHealth::healthy);
        asio::co_spawn(io_, supervise(slot, generation), asio::detached);
        co_return StartResult{true, {}};
    case WaitOutcome::superseded:
        co_return StartResult{false, fmt::format("start of slot {} was interrupted by a stop", name)};
    case WaitOutcome::exited: {
        auto child = slot->child;
        co_await stop_app(slot); // the leader is gone; clear what it left in its group
        co_return fail(fmt::format("slot {}: app `{}` {} before becoming healthy{}", name, slot->app.command,
                                   describe_exit(*child), indented_output(slot->tail.last_lines(20))));
    }
    case WaitOutcome::timed_out:
        co_await stop_app(slot);
        if (slot->generation != generation)
            co_return StartResult{false, fmt::format("start of slot {} was interrupted by a stop", name)};
        co_return fail(fmt::format("slot {}: release {} did not become healthy within {} (last health check of {}{}: "
                                   "{}){}",
                                   name, slot->release_id, proxy::format_duration(slot->app.start_timeout),
                                   slot->upstream.kind == proxy::UpstreamAddress::Kind::unix_socket
                                       ? "unix:" + slot->upstream.path
                                       : slot->upstream.to_string(),
                                   slot->app.health_path, slot->last_probe_error,
                                   indented_output(slot->tail.last_lines(20))));
    }
    co_return StartResult{false, "unreachable"};
}

asio::awaitable<void> Supervisor::stop_slot(std::string name) {
    auto slot = find(name);
    if (!slot)
        co_return;
    const unsigned generation = ++slot->generation;
    slot->waker.wake_all();
    const bool was_running = slot->health.load() != SlotHealth::stopped;
    if (slot->child) {
        spdlog::info("slot {}: stopping app (pid {})", name, slot->child->pid);
        co_await stop_app(slot);
    } else if (mode_of(slot->app) == Mode::hooks && !slot->app.stop.empty() && was_running) {
        auto hook = co_await run_hook(slot, "stop", slot->app.stop, slot->release_dir, slot->app.stop_timeout);
        if (!hook.ok)
            spdlog::warn("slot {}: {}", name, hook.error);
    }
    if (slot->generation == generation) // a newer start owns the state now otherwise
        set_health(*slot, SlotHealth::stopped);
}

asio::awaitable<void> Supervisor::stop_all() {
    // Signal every app first so they shut down in parallel, then wait for each.
    // The generation bump first: their exits must not read as crashes.
    for (auto& [name, slot] : slots_) {
        ++slot->generation;
        slot->waker.wake_all();
        if (slot->child && !slot->child->exited)
            ::kill(-slot->child->pid, SIGTERM);
    }
    for (auto& [name, slot] : slots_)
        co_await stop_slot(name);
}

asio::awaitable<HookResult> Supervisor::run_before_activate(std::string slot_name, std::string release_dir) {
    auto slot = find(slot_name);
    if (!slot) {
        HookResult result;
        result.error = fmt::format("unknown slot '{}'", slot_name);
        co_return result;
    }
    if (slot->app.before_activate.empty()) {
        HookResult result;
        result.ok = true;
        co_return result;
    }
    co_return co_await run_hook(slot, "before_activate", slot->app.before_activate, fs::path(release_dir),
                                slot->app.before_activate_timeout);
}

asio::awaitable<StartResult> Supervisor::activate_release(std::string slot_name, std::string release_id) {
    if (!find(slot_name))
        co_return StartResult{false, fmt::format("unknown slot '{}'", slot_name)};
    std::string why;
    if (!releases::is_valid_release_id(release_id, &why))
        co_return StartResult{false, why};
    const fs::path dir = releases::StorePaths(root_).release_dir(release_id);
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        co_return StartResult{false, fmt::format("release {} does not exist ({})", release_id, dir.string())};
    HookResult hook = co_await run_before_activate(slot_name, dir.string());
    if (!hook.ok)
        co_return StartResult{false, hook.error}; // nothing touched yet: no symlink, no process
    co_await stop_slot(slot_name);
    if (auto bound = releases::bind_slot(root_, slot_name, release_id); !bound)
        co_return StartResult{false, bound.error};
    co_return co_await start_slot(slot_name);
}

} // namespace releasectl
