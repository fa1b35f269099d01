// controller/metrics_render: the series /metrics serves, and the claim that a
// histogram_quantile(0.95) over the exposed buckets is within 10 % of the exact
// p95 for latencies between 0.05 s and 5 s.
#include "controller/metrics_render.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace releasectl;
using proxy::LatencyBuckets;

namespace {

// ---------------------------------------------------------------- parsing
struct Sample {
    std::string name;
    std::map<std::string, std::string> labels; // unescaped values
    std::string raw_labels;
    double value = 0;
};

struct Exposition {
    std::vector<Sample> samples;
    std::vector<std::string> help_names, type_names;
    std::map<std::string, std::string> types;
};

// A strict little parser for what we write (names, {k="v",...}, value).
Exposition parse(const std::string& text) {
    Exposition out;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        REQUIRE_FALSE(line.empty());
        if (line.rfind("# HELP ", 0) == 0) {
            out.help_names.push_back(line.substr(7, line.find(' ', 7) - 7));
            continue;
        }
        if (line.rfind("# TYPE ", 0) == 0) {
            auto name = line.substr(7, line.find(' ', 7) - 7);
            out.type_names.push_back(name);
            out.types[name] = line.substr(line.rfind(' ') + 1);
            continue;
        }
        REQUIRE(line[0] != '#');
        Sample s;
        std::size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
        s.name = line.substr(0, i);
        if (line[i] == '{') {
            std::size_t start = i;
            ++i;
            while (line[i] != '}') {
                auto eq = line.find('=', i);
                std::string key = line.substr(i, eq - i);
                REQUIRE(line[eq + 1] == '"');
                std::string value;
                std::size_t j = eq + 2;
                for (; line[j] != '"'; ++j) {
                    if (line[j] == '\\') {
                        ++j;
                        REQUIRE((line[j] == '\\' || line[j] == '"' || line[j] == 'n'));
                        value += line[j] == 'n' ? '\n' : line[j];
                    } else {
                        value += line[j];
                    }
                }
                REQUIRE(s.labels.emplace(key, value).second);
                i = j + 1;
                if (line[i] == ',') ++i;
            }
            s.raw_labels = line.substr(start, i + 1 - start);
            ++i;
        }
        REQUIRE(line[i] == ' ');
        auto value = line.substr(i + 1);
        s.value = value == "+Inf" ? INFINITY : value == "-Inf" ? -INFINITY : std::stod(value);
        out.samples.push_back(s);
    }
    return out;
}

std::string series_key(const Sample& s) {
    std::string key = s.name;
    for (const auto& [k, v] : s.labels) key += "|" + k + "=" + v;
    return key;
}

// ------------------------------------------------------ synthetic traffic
proxy::SlotStats stats_from(const std::vector<std::uint64_t>& micros) {
    proxy::SlotStats s;
    for (auto m : micros) {
        ++s.latency[LatencyBuckets::index_for(m)];
        s.latency_sum_micros += m;
        ++s.status_class[2];
    }
    return s;
}

double exact_quantile(std::vector<std::uint64_t> micros, double q) {
    std::sort(micros.begin(), micros.end());
    auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(micros.size())));
    return static_cast<double>(micros[std::max<std::size_t>(rank, 1) - 1]) / 1e6;
}

// Prometheus' histogram_quantile (promql/quantile.go bucketQuantile) over
// cumulative (le, count) pairs ending with +Inf.
double prometheus_quantile(double q, const std::vector<std::pair<double, double>>& buckets) {
    double observations = buckets.back().second;
    if (observations == 0) return NAN;
    double rank = q * observations;
    std::size_t b = 0;
    while (b < buckets.size() - 1 && buckets[b].second < rank) ++b;
    if (b == buckets.size() - 1) return buckets[buckets.size() - 2].first;
    if (b == 0 && buckets[0].first <= 0) return buckets[0].first;
    double start = 0, end = buckets[b].first, count = buckets[b].second;
    if (b > 0) {
        start = buckets[b - 1].first;
        count -= buckets[b - 1].second;
        rank -= buckets[b - 1].second;
    }
    return start + (end - start) * (rank / count);
}

std::vector<std::pair<double, double>> exposed_cumulative(const proxy::SlotStats& stats) {
    const auto& exposed = exposed_latency_buckets();
    auto counts = fold_latency(stats);
    std::vector<std::pair<double, double>> out;
    double cumulative = 0;
    for (std::size_t i = 0; i < exposed.size(); ++i) {
        cumulative += static_cast<double>(counts[i]);
        out.emplace_back(exposed[i].le_seconds, cumulative);
    }
    cumulative += static_cast<double>(counts.back());
    out.emplace_back(INFINITY, cumulative);
    return out;
}

std::uint64_t clamp_micros(double seconds) {
    return static_cast<std::uint64_t>(std::llround(std::clamp(seconds, 0.0, 200.0) * 1e6));
}

struct Accuracy {
    double exact, prometheus, own;
};

Accuracy p95_of(const std::vector<std::uint64_t>& micros) {
    auto stats = stats_from(micros);
    return {exact_quantile(micros, 0.95), prometheus_quantile(0.95, exposed_cumulative(stats)),
            stats.latency_quantile(0.95)};
}

void check_within_10_percent(const char* what, const std::vector<std::uint64_t>& micros) {
    auto a = p95_of(micros);
    INFO(what << ": exact p95 " << a.exact << " s, histogram_quantile " << a.prometheus << " s, own " << a.own);
    REQUIRE(a.exact >= 0.05);
    REQUIRE(a.exact <= 5.0);
    CHECK(std::abs(a.prometheus - a.exact) / a.exact < 0.10);
    // In the band Prometheus sees the same buckets the controller judges with.
    CHECK(std::abs(a.prometheus - a.own) / a.own < 0.001);
}

MetricsInputs sample_inputs() {
    MetricsInputs in;
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> latency(std::log(0.2), 0.7);
    for (const char* name : {"blue", "green"}) {
        SlotMetrics slot;
        slot.name = name;
        slot.release = std::string(name) == "blue" ? "20240101120000" : "20240102130000";
        slot.weight = std::string(name) == "blue" ? 90 : 10;
        slot.healthy = true;
        std::vector<std::uint64_t> micros;
        for (int i = 0; i < 5000; ++i) micros.push_back(clamp_micros(latency(rng)));
        micros.push_back(150'000'000); // one beyond every finite bucket
        micros.push_back(40);          // one in the first bucket
        slot.stats = stats_from(micros);
        slot.stats.status_class = {3, 1, 4900, 50, 40, 8};
        slot.stats.upstream_errors = {1, 2, 3, 4, 5};
        slot.stats.in_flight = 2;
        slot.stats.bytes_in = 1000;
        slot.stats.bytes_out = 200000;
        in.slots.push_back(slot);
    }
    in.proxy.connections_active = 12;
    in.proxy.connections_total = 345;
    in.proxy.requests_rejected = 6;
    in.proxy.tls_handshakes = {700, 300, 9, 2};
    in.rollout_step = 2;
    in.rollout_state = "running";
    in.rollout_states = {"idle", "starting_candidate", "running", "paused", "promoted", "rolled_back"};
    in.rollbacks_by_reason = {{"analysis", 3}, {"custom", 1}};
    in.version = "0.1.0";
    in.process = ProcessStats{1.5, 2e7, 3e8, 17, 1024, 1.7e9};
    return in;
}

// The value of the series `name{labels}`; fails the test when it is missing.
double sample_value(const Exposition& ex, const std::string& name, const std::map<std::string, std::string>& labels) {
    for (const auto& s : ex.samples)
        if (s.name == name && s.labels == labels) return s.value;
    FAIL("missing " << name);
    return -1;
}

} // namespace

// ---------------------------------------------------------------- buckets

TEST_CASE("exposed `le` boundaries are internal bucket boundaries, ascending") {
    const auto& exposed = exposed_latency_buckets();
    REQUIRE(exposed.size() > 50);
    for (std::size_t i = 0; i < exposed.size(); ++i) {
        const auto& b = exposed[i];
        auto micros = static_cast<std::uint64_t>(std::llround(b.le_seconds * 1e6));
        CHECK(static_cast<double>(micros) / 1e6 == b.le_seconds); // whole microseconds
        // Exactly the observations the internal buckets 0..internal_index hold.
        CHECK(LatencyBuckets::index_for(micros) == b.internal_index);
        CHECK(LatencyBuckets::index_for(micros + 1) == b.internal_index + 1);
        if (i > 0) CHECK(b.le_seconds > exposed[i - 1].le_seconds);
    }
    CHECK(exposed.front().le_seconds == doctest::Approx(0.0001));
    CHECK(exposed.back().internal_index < LatencyBuckets::kCount - 1);
}

TEST_CASE("between 0.05 s and 5 s adjacent boundaries are at most 2^(1/8) apart (worst-case error 9.05 %)") {
    const auto& exposed = exposed_latency_buckets();
    bool covers_low = false, covers_high = false;
    for (std::size_t i = 1; i < exposed.size(); ++i) {
        double lower = exposed[i - 1].le_seconds, upper = exposed[i].le_seconds;
        if (upper <= 0.05 || lower >= 5.0) continue;
        if (lower <= 0.05) covers_low = true;
        if (upper >= 5.0) covers_high = true;
        INFO("bucket (" << lower << ", " << upper << "]");
        CHECK(upper / lower < 1.0906);
    }
    CHECK(covers_low);
    CHECK(covers_high);
}

TEST_CASE("folding keeps every observation: the exposed counts sum to the internal ones") {
    auto in = sample_inputs();
    for (const auto& slot : in.slots) {
        auto folded = fold_latency(slot.stats);
        CHECK(folded.size() == exposed_latency_buckets().size() + 1);
        std::uint64_t folded_total = 0, internal_total = 0;
        for (auto n : folded) folded_total += n;
        for (auto n : slot.stats.latency) internal_total += n;
        CHECK(folded_total == internal_total);
        CHECK(folded.back() >= 1); // the 150 s observation
    }
}

// ---------------------------------------------------------------- p95 accuracy

TEST_CASE("p95 from the exposed buckets is within 10 % of the exact one: uniform 50 ms .. 5 s") {
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> d(0.05, 5.0);
    std::vector<std::uint64_t> micros;
    for (int i = 0; i < 20000; ++i) micros.push_back(clamp_micros(d(rng)));
    check_within_10_percent("uniform", micros);
}

TEST_CASE("p95 within 10 %: lognormal latencies of several medians") {
    for (double median : {0.02, 0.06, 0.2, 0.8, 1.5}) {
        std::mt19937_64 rng(2);
        std::lognormal_distribution<double> d(std::log(median), 0.6);
        std::vector<std::uint64_t> micros;
        for (int i = 0; i < 20000; ++i) micros.push_back(clamp_micros(d(rng)));
        if (exact_quantile(micros, 0.95) > 5.0 || exact_quantile(micros, 0.95) < 0.05) continue;
        check_within_10_percent("lognormal", micros);
    }
}

TEST_CASE("p95 within 10 %: bimodal (fast path + slow path)") {
    std::mt19937_64 rng(3);
    std::normal_distribution<double> fast(0.08, 0.01), slow(1.2, 0.15);
    std::bernoulli_distribution is_slow(0.15);
    std::vector<std::uint64_t> micros;
    for (int i = 0; i < 20000; ++i) micros.push_back(clamp_micros(is_slow(rng) ? slow(rng) : fast(rng)));
    check_within_10_percent("bimodal", micros);

    // And the hard case for interpolation: 96 % fast, so p95 sits at the top
    // edge of the fast mode.
    std::bernoulli_distribution rarely_slow(0.04);
    micros.clear();
    for (int i = 0; i < 20000; ++i) micros.push_back(clamp_micros(rarely_slow(rng) ? slow(rng) : fast(rng)));
    check_within_10_percent("bimodal, p95 in the fast mode", micros);
}

TEST_CASE("p95 within 10 %: near-constant latencies anywhere in 50 ms .. 5 s (worst case for interpolation)") {
    // All mass in a 1 % wide spike: the estimate can land anywhere in the
    // bucket, so this checks the bucket width itself.
    std::mt19937_64 rng(4);
    for (int step = 0; step <= 80; ++step) {
        double center = 0.05 * std::pow(100.0, step / 80.0) * 0.995; // 49.75 ms .. 4.975 s
        std::uniform_real_distribution<double> d(center, center * 1.005);
        std::vector<std::uint64_t> micros;
        for (int i = 0; i < 2000; ++i) micros.push_back(clamp_micros(d(rng)));
        if (exact_quantile(micros, 0.95) < 0.05) continue;
        check_within_10_percent("spike", micros);
    }
}

// ---------------------------------------------------------------- exposition

TEST_CASE("the exposition has every documented series, once, with consistent histograms") {
    auto in = sample_inputs();
    auto ex = parse(render_metrics(in));

    // HELP/TYPE once per family, every sample belongs to a declared family.
    std::set<std::string> help(ex.help_names.begin(), ex.help_names.end());
    std::set<std::string> types(ex.type_names.begin(), ex.type_names.end());
    CHECK(help.size() == ex.help_names.size());
    CHECK(types.size() == ex.type_names.size());
    CHECK(help == types);

    std::set<std::string> keys;
    std::set<std::string> names;
    for (const auto& s : ex.samples) {
        INFO(series_key(s));
        CHECK(keys.insert(series_key(s)).second); // no duplicate series
        names.insert(s.name);
        std::string family = s.name;
        for (const char* suffix : {"_bucket", "_sum", "_count"})
            if (!ex.types.count(family) && family.size() > std::string(suffix).size() &&
                family.ends_with(suffix))
                family = family.substr(0, family.size() - std::string(suffix).size());
        CHECK(ex.types.count(family) == 1);
    }
    for (const char* required :
         {"releasectl_requests_total", "releasectl_request_duration_seconds_bucket",
          "releasectl_request_duration_seconds_sum", "releasectl_request_duration_seconds_count",
          "releasectl_upstream_errors_total", "releasectl_slot_weight", "releasectl_slot_healthy",
          "releasectl_rollout_step", "releasectl_rollout_state", "releasectl_rollbacks_total",
          "releasectl_release_info", "releasectl_connections_active", "releasectl_build_info",
          "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
          "process_start_time_seconds", "process_max_fds", "process_virtual_memory_bytes"}) {
        INFO(required);
        CHECK(names.count(required) == 1);
    }
    CHECK(ex.types["releasectl_requests_total"] == "counter");
    CHECK(ex.types["releasectl_request_duration_seconds"] == "histogram");
    CHECK(ex.types["releasectl_slot_weight"] == "gauge");
    CHECK(ex.types["process_cpu_seconds_total"] == "counter");

    // Histograms: per slot, buckets ascending by le, counts monotone, +Inf == _count.
    for (const auto& slot : in.slots) {
        std::vector<std::pair<double, double>> buckets;
        double count = -1, sum = -1;
        for (const auto& s : ex.samples) {
            if (s.labels.count("slot") == 0 || s.labels.at("slot") != slot.name) continue;
            if (s.name == "releasectl_request_duration_seconds_bucket")
                buckets.emplace_back(s.labels.at("le") == "+Inf" ? INFINITY : std::stod(s.labels.at("le")), s.value);
            if (s.name == "releasectl_request_duration_seconds_count") count = s.value;
            if (s.name == "releasectl_request_duration_seconds_sum") sum = s.value;
        }
        REQUIRE(buckets.size() == exposed_latency_buckets().size() + 1);
        CHECK(std::isinf(buckets.back().first));
        CHECK(buckets.back().second == count);
        CHECK(count == static_cast<double>(slot.stats.requests())); // 5002 observations, 5002 statuses
        CHECK(sum == doctest::Approx(static_cast<double>(slot.stats.latency_sum_micros) / 1e6));
        for (std::size_t i = 1; i < buckets.size(); ++i) {
            CHECK(buckets[i].first > buckets[i - 1].first);
            CHECK(buckets[i].second >= buckets[i - 1].second);
        }
        // The histogram Prometheus would compute equals the controller's own p95.
        CHECK(prometheus_quantile(0.95, buckets) == doctest::Approx(slot.stats.latency_quantile(0.95)).epsilon(0.001));
    }
}

TEST_CASE("series values: status classes, errors, gauges, one-hot state, rollbacks, info") {
    auto in = sample_inputs();
    auto ex = parse(render_metrics(in));
    auto value = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
        return sample_value(ex, name, labels);
    };
    const std::string blue_release = "20240101120000";
    CHECK(value("releasectl_requests_total", {{"slot", "blue"}, {"release", blue_release}, {"code", "2xx"}}) == 4900);
    CHECK(value("releasectl_requests_total", {{"slot", "blue"}, {"release", blue_release}, {"code", "5xx"}}) == 8);
    CHECK(value("releasectl_requests_total", {{"slot", "blue"}, {"release", blue_release}, {"code", "1xx"}}) == 1);
    CHECK(value("releasectl_requests_total", {{"slot", "blue"}, {"release", blue_release}, {"code", "none"}}) == 3);
    CHECK(value("releasectl_upstream_errors_total", {{"slot", "green"}, {"kind", "connect"}}) == 1);
    CHECK(value("releasectl_upstream_errors_total", {{"slot", "green"}, {"kind", "bad_response"}}) == 4);
    CHECK(value("releasectl_upstream_errors_total", {{"slot", "green"}, {"kind", "tls"}}) == 5);
    CHECK(value("releasectl_tls_handshakes_total", {{"result", "full"}}) == 700);
    CHECK(value("releasectl_tls_handshakes_total", {{"result", "resumed"}}) == 300);
    CHECK(value("releasectl_tls_handshakes_total", {{"result", "failed"}}) == 9);
    CHECK(value("releasectl_tls_handshakes_total", {{"result", "timeout"}}) == 2);
    CHECK(value("releasectl_slot_weight", {{"slot", "green"}}) == 10);
    CHECK(value("releasectl_slot_healthy", {{"slot", "green"}}) == 1);
    CHECK(value("releasectl_release_info", {{"slot", "blue"}, {"release", blue_release}}) == 1);
    CHECK(value("releasectl_rollout_step", {}) == 2);
    CHECK(value("releasectl_rollout_state", {{"state", "running"}}) == 1);
    double one_hot = 0;
    int states = 0;
    for (const auto& s : ex.samples)
        if (s.name == "releasectl_rollout_state") one_hot += s.value, ++states;
    CHECK(one_hot == 1);
    CHECK(states == 6);
    CHECK(value("releasectl_rollbacks_total", {{"reason", "analysis"}}) == 3);
    CHECK(value("releasectl_rollbacks_total", {{"reason", "manual"}}) == 0); // known reasons start at 0
    CHECK(value("releasectl_rollbacks_total", {{"reason", "custom"}}) == 1);
    CHECK(value("releasectl_connections_active", {}) == 12);
    CHECK(value("releasectl_build_info", {{"version", "0.1.0"}}) == 1);
    CHECK(value("process_open_fds", {}) == 17);
    CHECK(value("process_start_time_seconds", {}) == 1.7e9);
}

TEST_CASE("requests_total{release} counts from the release's baseline; per-slot series stay cumulative") {
    auto in = sample_inputs();
    // blue served {3, 1, 4000, 50, 40, 5} for an earlier release before this one was bound.
    in.slots[0].release_baseline = {3, 1, 4000, 50, 40, 5};
    auto ex = parse(render_metrics(in));
    auto value = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
        return sample_value(ex, name, labels);
    };
    const std::string blue_release = "20240101120000";
    CHECK(value("releasectl_requests_total", {{"slot", "blue"}, {"release", blue_release}, {"code", "2xx"}}) == 900);
    CHECK(value("releasectl_requests_total", {{"slot", "blue"}, {"release", blue_release}, {"code", "5xx"}}) == 3);
    CHECK(value("releasectl_requests_total", {{"slot", "blue"}, {"release", blue_release}, {"code", "none"}}) == 0);
    // The histogram and the other per-slot counters have no release label: untouched.
    CHECK(value("releasectl_request_duration_seconds_count", {{"slot", "blue"}}) == 5002);
    CHECK(value("releasectl_slot_received_bytes_total", {{"slot", "blue"}}) == 1000);
    // green has no baseline: everything since start.
    CHECK(value("releasectl_requests_total", {{"slot", "green"}, {"release", "20240102130000"}, {"code", "2xx"}}) == 4900);
}

TEST_CASE("label values from the outside world are escaped") {
    auto in = sample_inputs();
    in.slots[0].release = "weird \"release\"\\with\nnewline";
    in.version = "1.0 \"beta\"";
    auto text = render_metrics(in);
    CHECK(text.find("release=\"weird \\\"release\\\"\\\\with\\nnewline\"") != std::string::npos);
    CHECK(text.find("version=\"1.0 \\\"beta\\\"\"") != std::string::npos);
    auto ex = parse(text); // and it still parses back to the original value
    bool found = false;
    for (const auto& s : ex.samples)
        if (s.name == "releasectl_release_info" && s.labels.at("release") == in.slots[0].release) found = true;
    CHECK(found);
}

TEST_CASE("a slot without a release has no release_info; the current state is one-hot even if unlisted") {
    auto in = sample_inputs();
    in.slots[1].release.clear();
    in.rollout_states = {"idle"};
    in.rollout_state = "paused";
    auto ex = parse(render_metrics(in));
    int info = 0, paused = 0, idle = 0;
    for (const auto& s : ex.samples) {
        if (s.name == "releasectl_release_info") ++info;
        if (s.name == "releasectl_rollout_state" && s.labels.at("state") == "paused") paused = static_cast<int>(s.value);
        if (s.name == "releasectl_rollout_state" && s.labels.at("state") == "idle") idle = 1 + static_cast<int>(s.value);
    }
    CHECK(info == 1);
    CHECK(paused == 1);
    CHECK(idle == 1); // present with value 0
}

TEST_CASE("process stats come from /proc/self when not given") {
    auto p = read_process_stats();
    CHECK(p.open_fds >= 3);
    CHECK(p.max_fds >= p.open_fds);
    CHECK(p.resident_bytes > 0);
    CHECK(p.virtual_bytes >= p.resident_bytes);
    CHECK(p.start_time_seconds > 1.5e9);
    CHECK(p.cpu_seconds >= 0);
    MetricsInputs in;
    in.version = "x";
    auto text = render_metrics(in);
    CHECK(text.find("\nprocess_resident_memory_bytes ") != std::string::npos);
}

TEST_CASE("readiness JSON names every check") {
    ReadinessReport report{{{"listeners", true, ""}, {"live_slot", true, ""}}};
    CHECK(report.ready());
    CHECK(render_readiness(report) == "{\"status\":\"ready\",\"checks\":{\"listeners\":\"ok\",\"live_slot\":\"ok\"}}\n");
    report.checks[1] = {"live_slot", false, "blue is unhealthy"};
    CHECK_FALSE(report.ready());
    CHECK(render_readiness(report) ==
          "{\"status\":\"not_ready\",\"checks\":{\"listeners\":\"ok\",\"live_slot\":\"blue is unhealthy\"}}\n");
}
