#include "controller/metrics_render.hpp"

#include "proxy/prometheus_text.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>

namespace releasectl {

using proxy::LatencyBuckets;

namespace {

// Which internal latency buckets become exposed `le` boundaries (see header).
constexpr std::size_t kBandFirst = 71; // (46.9 ms, 51.2 ms]: contains 50 ms
constexpr std::size_t kBandLast = 125; // (4.63 s, 5.05 s]: contains 5 s
bool exposed(std::size_t i) {
    if (i + 1 >= LatencyBuckets::kCount) return false; // the internal +Inf bucket
    if (i <= 24) return i % 8 == 0;                     // 100, 200, 400, 800 µs
    if (i < kBandFirst) return i % 2 == 0;              // 0.95 ms .. 44 ms, 19 % apart
    if (i <= kBandLast) return true;                    // 47 ms .. 5.05 s, 9 % apart
    return (i - kBandLast - 1) % 4 == 0;                // 5.5 s .. 88 s, 41 % apart
}

// The largest whole microsecond that LatencyBuckets::index_for puts in bucket i.
std::uint64_t last_micros_in(std::size_t i) {
    auto m = static_cast<std::uint64_t>(std::floor(LatencyBuckets::upper_micros(i)));
    while (m > 0 && LatencyBuckets::index_for(m) > i) --m;
    while (LatencyBuckets::index_for(m + 1) <= i) ++m;
    return m;
}

const char* const kStatusCodes[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

} // namespace

const std::vector<ExposedBucket>& exposed_latency_buckets() {
    static const std::vector<ExposedBucket> buckets = [] {
        std::vector<ExposedBucket> out;
        for (std::size_t i = 0; i < LatencyBuckets::kCount; ++i)
            if (exposed(i)) out.push_back({i, static_cast<double>(last_micros_in(i)) / 1e6});
        return out;
    }();
    return buckets;
}

std::vector<std::uint64_t> fold_latency(const proxy::SlotStats& stats) {
    const auto& buckets = exposed_latency_buckets();
    std::vector<std::uint64_t> counts(buckets.size() + 1, 0);
    std::size_t target = 0;
    for (std::size_t i = 0; i < stats.latency.size(); ++i) {
        while (target < buckets.size() && buckets[target].internal_index < i) ++target;
        counts[target] += stats.latency[i];
    }
    return counts;
}

ProcessStats read_process_stats() {
    ProcessStats p;
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    double boot_time = 0;
    {
        std::ifstream stat("/proc/stat");
        std::string key;
        while (stat >> key) {
            if (key == "btime") {
                stat >> boot_time;
                break;
            }
            stat.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
        }
    }
    {
        // /proc/self/stat: "pid (comm) state ppid ..."; comm may contain spaces
        // and parentheses, so fields are counted after the LAST ')'.
        std::ifstream file("/proc/self/stat");
        std::string line;
        std::getline(file, line);
        auto close = line.rfind(')');
        if (close != std::string::npos && ticks > 0) {
            std::istringstream fields(line.substr(close + 2));
            std::vector<std::string> f{std::istream_iterator<std::string>(fields), {}};
            // f[0] is field 3 (state): field N is f[N - 3].
            auto field = [&](std::size_t n) { return n - 3 < f.size() ? std::strtod(f[n - 3].c_str(), nullptr) : 0.0; };
            p.cpu_seconds = (field(14) + field(15)) / ticks;
            p.start_time_seconds = boot_time + field(22) / ticks;
            p.virtual_bytes = field(23);
            p.resident_bytes = field(24) * page;
        }
    }
    std::error_code ec;
    std::size_t fds = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++fds;
    p.open_fds = static_cast<double>(fds);
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0)
        p.max_fds = limit.rlim_cur == RLIM_INFINITY ? INFINITY : static_cast<double>(limit.rlim_cur);
    return p;
}

std::string render_metrics(const MetricsInputs& in) {
    proxy::prom::TextWriter w;
    const auto& buckets = exposed_latency_buckets();
    std::vector<double> bounds;
    bounds.reserve(buckets.size());
    for (const auto& b : buckets) bounds.push_back(b.le_seconds);

    for (const auto& slot : in.slots) {
        const auto& s = slot.stats;
        for (std::size_t cls = 0; cls < s.status_class.size(); ++cls) {
            const std::uint64_t base = slot.release_baseline[cls];
            w.counter("releasectl_requests_total",
                      "Requests answered through a slot, by status class (code=\"none\": no status recorded); "
                      "counted per release from the moment it was bound to the slot.",
                      {{"slot", slot.name}, {"release", slot.release}, {"code", kStatusCodes[cls]}},
                      s.status_class[cls] >= base ? s.status_class[cls] - base : s.status_class[cls]);
        }
        w.histogram("releasectl_request_duration_seconds",
                    "Time from the request head to the last response byte, per slot.", {{"slot", slot.name}}, bounds,
                    fold_latency(s), static_cast<double>(s.latency_sum_micros) / 1e6);
        for (std::size_t k = 0; k < s.upstream_errors.size(); ++k)
            w.counter("releasectl_upstream_errors_total", "Failures talking to a slot's upstream, by kind.",
                      {{"slot", slot.name}, {"kind", proxy::to_string(static_cast<proxy::UpstreamErrorKind>(k))}},
                      s.upstream_errors[k]);
        w.gauge("releasectl_slot_requests_in_flight", "Requests a slot is serving right now.", {{"slot", slot.name}},
                static_cast<double>(s.in_flight));
        w.counter("releasectl_slot_received_bytes_total", "Bytes received from clients (request heads and bodies), per slot.",
                  {{"slot", slot.name}}, s.bytes_in);
        w.counter("releasectl_slot_sent_bytes_total", "Bytes sent to clients (response heads and bodies), per slot.",
                  {{"slot", slot.name}}, s.bytes_out);
        w.gauge("releasectl_slot_weight", "Share of new traffic routed to the slot (percent of the route table).",
                {{"slot", slot.name}}, slot.weight);
        w.gauge("releasectl_slot_healthy", "1 when the slot's health check passes, else 0.", {{"slot", slot.name}},
                slot.healthy ? 1.0 : 0.0);
        if (!slot.release.empty())
            w.gauge("releasectl_release_info", "The release bound to each slot (always 1).",
                    {{"slot", slot.name}, {"release", slot.release}}, 1.0);
    }

    w.gauge("releasectl_rollout_step", "1-based step of the rollout in progress; 0 when none.", {},
            static_cast<double>(in.rollout_step));
    // One-hot over every state name; the current one is included even if the
    // caller forgot it in the list, and no name appears twice.
    std::vector<std::string> states = in.rollout_states;
    if (!in.rollout_state.empty() && std::find(states.begin(), states.end(), in.rollout_state) == states.end())
        states.push_back(in.rollout_state);
    std::set<std::string> seen_states;
    for (const auto& state : states)
        if (seen_states.insert(state).second)
            w.gauge("releasectl_rollout_state", "1 for the rollout state the controller is in, 0 for the others.",
                    {{"state", state}}, state == in.rollout_state ? 1.0 : 0.0);

    std::map<std::string, std::uint64_t> rollbacks;
    for (const auto& reason : known_rollback_reasons()) rollbacks[reason] = 0;
    for (const auto& [reason, n] : in.rollbacks_by_reason) rollbacks[reason] += n;
    for (const auto& [reason, n] : rollbacks)
        w.counter("releasectl_rollbacks_total", "Rollouts rolled back since the daemon started, by reason.",
                  {{"reason", reason}}, n);

    w.gauge("releasectl_connections_active", "Client connections open on the proxy listeners.", {},
            static_cast<double>(in.proxy.connections_active));
    w.counter("releasectl_connections_total", "Client connections accepted by the proxy.", {},
              in.proxy.connections_total);
    w.counter("releasectl_requests_rejected_total",
              "Requests the proxy refused itself before choosing a slot (400, 413, 414, 431).", {},
              in.proxy.requests_rejected);
    for (std::size_t i = 0; i < in.proxy.tls_handshakes.size(); ++i)
        w.counter("releasectl_tls_handshakes_total",
                  "TLS handshakes of clients on the HTTPS listeners, by result (full, resumed, failed, timeout).",
                  {{"result", proxy::to_string(static_cast<proxy::TlsHandshakeResult>(i))}}, in.proxy.tls_handshakes[i]);
    w.gauge("releasectl_build_info", "The running releasectl version (always 1).", {{"version", in.version}}, 1.0);

    const ProcessStats p = in.process ? *in.process : read_process_stats();
    w.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", {}, p.cpu_seconds);
    w.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", {}, p.resident_bytes);
    w.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", {}, p.virtual_bytes);
    w.gauge("process_open_fds", "Number of open file descriptors.", {}, p.open_fds);
    w.gauge("process_max_fds", "Maximum number of open file descriptors.", {}, p.max_fds);
    w.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", {},
            p.start_time_seconds);
    return w.str();
}

bool ReadinessReport::ready() const {
    return std::all_of(checks.begin(), checks.end(), [](const ReadinessCheck& c) { return c.ok; });
}

std::string render_readiness(const ReadinessReport& report) {
    boost::json::object checks;
    for (const auto& c : report.checks) checks[c.name] = c.ok ? "ok" : (c.detail.empty() ? "failed" : c.detail);
    boost::json::object body;
    body["status"] = report.ready() ? "ready" : "not_ready";
    body["checks"] = std::move(checks);
    return boost::json::serialize(body) + "\n";
}

} // namespace releasectl
