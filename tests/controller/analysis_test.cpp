#include "controller/analysis.hpp"

#include <doctest/doctest.h>

using namespace releasectl;
using namespace std::chrono_literals;

namespace {

RolloutConfig policy() {
    RolloutConfig p;
    p.min_requests = 100;
    p.max_error_rate = 0.05;
    p.max_p95 = 2s;
    return p;
}

WindowNumbers numbers(std::uint64_t requests, std::uint64_t errors, double p95) {
    return WindowNumbers{requests, errors, p95};
}

Verdict judge_alone(const WindowNumbers& candidate, const RolloutConfig& p = policy()) {
    return judge(candidate, std::nullopt, p);
}

} // namespace

TEST_CASE("error rate: exactly at the limit passes, just above fails") {
    CHECK(judge_alone(numbers(100, 5, 0.1)).kind == VerdictKind::pass);          // 5.0 %
    CHECK(judge_alone(numbers(10000, 500, 0.1)).kind == VerdictKind::pass);      // 5.00 %
    Verdict above = judge_alone(numbers(10000, 501, 0.1));                       // 5.01 %
    CHECK(above.kind == VerdictKind::fail);
    REQUIRE(above.reasons.size() == 1);
    CHECK(above.reasons[0] == "error rate 5.01% > 5.00%"); // enough digits to tell them apart
    Verdict bad = judge_alone(numbers(1000, 102, 0.1));
    CHECK(bad.kind == VerdictKind::fail);
    CHECK(bad.reasons[0] == "error rate 10.2% > 5.0%");
    CHECK(bad.error_rate == doctest::Approx(0.102));
    CHECK(bad.requests == 1000);
    CHECK(bad.errors == 102);
}

TEST_CASE("p95: exactly at the limit passes, just above fails") {
    CHECK(judge_alone(numbers(100, 0, 2.0)).kind == VerdictKind::pass);
    Verdict slow = judge_alone(numbers(100, 0, 2.001));
    CHECK(slow.kind == VerdictKind::fail);
    CHECK(slow.reasons[0] == "p95 2.001s > 2s");
    Verdict very_slow = judge_alone(numbers(100, 0, 5.31));
    CHECK(very_slow.reasons[0] == "p95 5.31s > 2s");
    RolloutConfig tight = policy();
    tight.max_p95 = 250ms;
    CHECK(judge_alone(numbers(100, 0, 0.25), tight).kind == VerdictKind::pass);
    CHECK(judge_alone(numbers(100, 0, 0.2501), tight).kind == VerdictKind::fail);
}

TEST_CASE("both limits broken: both reasons") {
    Verdict v = judge_alone(numbers(200, 100, 3.0));
    CHECK(v.kind == VerdictKind::fail);
    CHECK(v.reasons.size() == 2);
    CHECK(v.summary().find("fail: 200 requests, error rate 50.0%, p95 3s") == 0);
}

TEST_CASE("min-sample: fewer than min_requests is inconclusive, whatever the numbers") {
    Verdict few = judge_alone(numbers(99, 99, 10.0));
    CHECK(few.kind == VerdictKind::inconclusive);
    CHECK(few.reasons[0] == "only 99 requests in the window, need 100");
    CHECK(judge_alone(numbers(100, 0, 0.01)).kind == VerdictKind::pass); // exactly min_requests
    Verdict none = judge_alone(numbers(0, 0, 0.0));
    CHECK(none.kind == VerdictKind::inconclusive); // no traffic is not a failure
    CHECK(none.error_rate == 0.0);
    RolloutConfig no_minimum = policy();
    no_minimum.min_requests = 0;
    CHECK(judge_alone(numbers(0, 0, 0.0), no_minimum).kind == VerdictKind::pass);
}

TEST_CASE("baseline comparison: error rate increase") {
    RolloutConfig p = policy();
    p.max_error_rate = 0.5;
    p.max_error_rate_increase = 0.02;
    const WindowNumbers baseline = numbers(1000, 10, 0.1); // 1 %
    CHECK(judge(numbers(1000, 30, 0.1), baseline, p).kind == VerdictKind::pass); // 3 % = 1 % + 2 pp exactly
    Verdict worse = judge(numbers(1000, 31, 0.1), baseline, p);
    CHECK(worse.kind == VerdictKind::fail);
    CHECK(worse.reasons[0].find("error rate 3.1% > live slot's 1.0% + 2.0%") == 0);
    CHECK(worse.baseline_error_rate == doctest::Approx(0.01));
    CHECK(worse.baseline_requests == 1000u);
    // Without the option the baseline is informational only.
    RolloutConfig absolute_only = policy();
    absolute_only.max_error_rate = 0.5;
    CHECK(judge(numbers(1000, 31, 0.1), baseline, absolute_only).kind == VerdictKind::pass);
}

TEST_CASE("baseline comparison: p95 ratio") {
    RolloutConfig p = policy();
    p.max_p95_ratio = 1.5;
    const WindowNumbers baseline = numbers(500, 0, 0.2);
    CHECK(judge(numbers(500, 0, 0.3), baseline, p).kind == VerdictKind::pass); // 1.5 x exactly
    Verdict slower = judge(numbers(500, 0, 0.31), baseline, p);
    CHECK(slower.kind == VerdictKind::fail);
    CHECK(slower.reasons[0] == "p95 310ms > 1.5 x live slot's 200ms (max_p95_ratio)");
}

TEST_CASE("a baseline with fewer than min_requests is not compared against") {
    RolloutConfig p = policy();
    p.max_p95_ratio = 1.1;
    p.max_error_rate_increase = 0.0;
    const WindowNumbers thin_baseline = numbers(99, 0, 0.01);
    Verdict v = judge(numbers(1000, 10, 1.0), thin_baseline, p);
    CHECK(v.kind == VerdictKind::pass);
    CHECK(v.baseline_requests == 99u); // still reported
    CHECK(judge(numbers(1000, 10, 1.0), numbers(0, 0, 0.0), p).kind == VerdictKind::pass);
}

TEST_CASE("judge reads SlotStats windows") {
    proxy::SlotStats candidate;
    candidate.status_class[2] = 900;
    candidate.status_class[5] = 100;
    const std::size_t fast = proxy::LatencyBuckets::index_for(10'000); // 10 ms
    candidate.latency[fast] = 1000;
    proxy::SlotStats baseline;
    baseline.status_class[2] = 1000;
    baseline.latency[fast] = 1000;
    Verdict v = judge(candidate, &baseline, policy());
    CHECK(v.kind == VerdictKind::fail);
    CHECK(v.requests == 1000);
    CHECK(v.errors == 100);
    CHECK(v.error_rate == doctest::Approx(0.1));
    CHECK(v.p95_seconds == doctest::Approx(0.01).epsilon(0.1));
    CHECK(v.baseline_requests == 1000u);
    CHECK(judge(proxy::SlotStats{}, nullptr, policy()).kind == VerdictKind::inconclusive);
}

TEST_CASE("human formatting") {
    CHECK(format_percent(0.102) == "10.2%");
    CHECK(format_percent(0.05) == "5.0%");
    CHECK(format_percent(0.0) == "0.0%");
    CHECK(format_percent(0.0005) == "0.05%");
    CHECK(format_seconds(0.0123) == "12ms");
    CHECK(format_seconds(0.0015) == "1.5ms");
    CHECK(format_seconds(2.31) == "2.31s");
    CHECK(format_seconds(2.0) == "2s");
    CHECK(to_string(VerdictKind::inconclusive) == std::string("inconclusive"));
    CHECK(verdict_kind_from_string("fail") == VerdictKind::fail);
    CHECK_FALSE(verdict_kind_from_string("meh"));
}
