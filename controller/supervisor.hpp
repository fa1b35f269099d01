#pragma once
// The slot supervisor: runs each slot's app (or its external start/stop
// hooks), health-checks it, restarts it with backoff when it crashes or stays
// unhealthy, reports a slot that keeps crashing, and runs the before_activate
// hook. Lives on the control thread's io_context: call every member on that
// thread (health() and pid() may be read from any thread).
//
// Processes: `/bin/sh -c COMMAND` in the slot's release directory, in a new
// session (its own process group), stdin /dev/null, stdout+stderr into
// <root>/.releasectl/logs/<slot>.log (size-capped, rotated). A plain command
// line is run as `exec COMMAND`, so the app itself is the process we watch
// and signal. Stop = SIGTERM to the group, SIGKILL after stop_timeout.
// Exits are awaited through pidfd (polling waitpid(WNOHANG) where pidfd is
// unavailable); no SIGCHLD handler. The daemon becomes a child subreaper so
// that processes an app orphaned in its group are reaped, not left as zombies.
#include "controller/config.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace releasectl {

enum class SlotHealth {
    stopped,    // nothing running (never started, or stopped)
    starting,   // launched, waiting for healthy_threshold consecutive 2xx
    healthy,    // takes traffic
    unhealthy,  // failed unhealthy_threshold checks (apps releasectl does not run)
    restarting, // crashed or stayed unhealthy; waiting out the backoff / relaunching
    crashing,   // more than max_restarts within restart_window: reported, not restarted
    failed,     // start_slot gave up (exited before healthy, start_timeout, bad config)
};
std::string_view to_string(SlotHealth health);

struct StartResult {
    bool ok = false;
    std::string error; // names the slot, the cause and the app's last output lines
};

struct HookResult {
    bool ok = false;
    std::optional<int> exit_code; // when it exited
    std::optional<int> signal;    // when a signal ended it
    bool timed_out = false;
    std::string output_tail;      // last ~20 lines of stdout+stderr
    std::string error;            // "before_activate hook `bin/migrate` ... exited with code 3; last output: ..."
};

struct SlotStatus {
    SlotHealth health = SlotHealth::stopped;
    std::optional<pid_t> pid;          // the app process (also its process group id)
    std::string release_id;            // what the slot was started from
    std::string release_dir;
    unsigned restarts_in_window = 0;
    std::string last_error;            // last crash / probe failure, for `status`
};

// Pure restart accounting: exponential backoff (1s, 2s, 4s, .. capped at
// 30s) and a budget of max_restarts within restart_window.
class RestartBudget {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    RestartBudget(unsigned max_restarts, proxy::Duration window);

    // Records a restart at `now` and returns the delay to wait before it, or
    // nullopt when this restart would exceed the budget (the slot is crashing).
    std::optional<proxy::Duration> next(TimePoint now);
    unsigned recent(TimePoint now) const; // restarts within the window
    void reset();
    void set_limits(unsigned max_restarts, proxy::Duration window);

    static constexpr proxy::Duration initial_backoff{1'000};
    static constexpr proxy::Duration max_backoff{30'000};

private:
    unsigned max_restarts_;
    proxy::Duration window_;
    std::deque<TimePoint> restarts_;
};

class Supervisor {
public:
    using ChangeHandler = std::function<void(const std::string& slot, SlotHealth health)>;

    Supervisor(boost::asio::io_context& io, const Config& config, ChangeHandler on_change = {});
    // Kills (SIGKILL) and reaps every process group still running; call
    // stop_all() first for a graceful stop.
    ~Supervisor();
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // Starts the slot from the release slots/<slot> names (stopping whatever
    // runs there first) and waits until it is healthy, it exits, or
    // start_timeout passes. From then on it is watched and auto-restarted.
    // Without [app] command/start hooks, only waits for the health checks.
    boost::asio::awaitable<StartResult> start_slot(std::string slot);
    // SIGTERM to the group, SIGKILL after stop_timeout, all members reaped
    // (or the `stop` hook, for an external supervisor).
    boost::asio::awaitable<void> stop_slot(std::string slot);
    boost::asio::awaitable<void> stop_all();

    // Runs [app] before_activate in `release_dir` with the slot's environment
    // and before_activate_timeout. No hook configured = ok.
    boost::asio::awaitable<HookResult> run_before_activate(std::string slot, std::string release_dir);

    // The deploy sequence for an idle slot: before_activate in releases/<id>
    // (on failure nothing is touched: no symlink, no process), then stop the
    // slot, bind slots/<slot> -> releases/<id>, start_slot.
    boost::asio::awaitable<StartResult> activate_release(std::string slot, std::string release_id);

    SlotHealth health(const std::string& slot) const; // stopped for an unknown slot
    std::optional<pid_t> pid(const std::string& slot) const;
    SlotStatus status(const std::string& slot) const;

    // SIGHUP: new [app] settings apply from the next launch of each slot.
    void reconfigure(const Config& config);

    struct Slot; // per-slot state, defined in supervisor.cpp

private:
    std::shared_ptr<Slot> find(const std::string& slot) const;

    boost::asio::io_context& io_;
    std::string root_;
    ChangeHandler on_change_;
    std::map<std::string, std::shared_ptr<Slot>> slots_;
};

} // namespace releasectl
