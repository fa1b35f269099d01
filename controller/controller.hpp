#pragma once
// The control plane's conductor, on the control thread: feeds events to the
// pure rollout machine and performs its actions (publish route tables, flip
// symlinks, start/stop slot apps, persist state, notify), runs the analysis
// ticks, and answers the admin API. Everything here runs on one io_context
// thread, so no member needs a lock.
#include "controller/config.hpp"
#include "controller/rollout_machine.hpp"

#include "proxy/route_table.hpp"
#include "proxy/slot_stats.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/value.hpp>

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace releasectl {

namespace proxy { class ProxyServer; }
class Supervisor;
class Notifier;

struct AdminReply {
    unsigned status = 200;
    boost::json::value body;
};

class Controller {
public:
    Controller(boost::asio::io_context& io, Config config, proxy::ProxyServer& proxy, Supervisor& supervisor,
               Notifier& notifier);
    ~Controller();

    // The state the daemon starts from (state.json, else [weights]), reconciled
    // with the symlinks on disk. Call before the proxy starts serving.
    static RolloutState load_initial_state(const Config& config);
    static proxy::RouteTable route_table_for(const Config& config, const RolloutState& state);

    void start(RolloutState initial); // DaemonRestarted + ticks
    void reload(Config fresh);        // SIGHUP
    boost::asio::awaitable<void> shutdown(); // persists state; stops slot apps
    boost::asio::awaitable<AdminReply> handle(std::string method, std::string target, std::string body);

    const RolloutState& state() const { return state_; }
    const Config& config() const { return config_; }
    std::map<std::string, std::uint64_t> rollbacks_by_reason() const { return rollbacks_by_reason_; }
    // Per slot: its status-class counters when its current release was bound.
    // releasectl_requests_total{slot,release} counts from there, so a release
    // is never credited with the requests its slot served for an earlier one.
    const std::map<std::string, std::array<std::uint64_t, 6>>& release_baselines() const { return release_baselines_; }
    bool live_slot_healthy() const;

private:
    Transition apply(const Event& event);
    void perform(const Action& action);
    boost::asio::awaitable<void> tick_loop();
    std::optional<Verdict> judge_window();
    void reset_windows();
    void note_rebound_slots(const std::map<std::string, std::string>& bound_before);
    boost::json::value status_json() const;
    boost::json::value slots_json() const;
    AdminReply from_transition(const Transition& t, unsigned refused_status = 409);
    boost::asio::awaitable<void> start_slot(action::StartSlot start);
    boost::asio::awaitable<void> stop_slot(action::StopSlot stop);
    boost::asio::awaitable<void> run_hook(action::RunBeforeActivate hook);
    AdminReply deploy(const boost::json::object& request);
    TimePoint now() const;

    boost::asio::io_context& io_;
    Config config_;
    MachineSettings settings_;
    proxy::ProxyServer& proxy_;
    Supervisor& supervisor_;
    Notifier& notifier_;
    RolloutState state_;
    boost::asio::steady_timer tick_timer_;
    bool stopping_ = false;
    bool realign_ticks_ = false;
    // Analysis windows: counters at the previous tick, per slot name.
    std::map<std::string, proxy::SlotStats> last_snapshot_;
    std::optional<Verdict> last_verdict_;
    std::map<std::string, std::uint64_t> rollbacks_by_reason_;
    std::map<std::string, std::array<std::uint64_t, 6>> release_baselines_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace releasectl
