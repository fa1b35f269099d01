// The supervisor's restart accounting, on an injected clock.
#include "controller/supervisor.hpp"

#include <doctest/doctest.h>

using releasectl::RestartBudget;
using namespace std::chrono_literals;
using Duration = releasectl::proxy::Duration;

TEST_CASE("restart backoff doubles from 1s and is capped at 30s") {
    RestartBudget budget(100, Duration(3'600'000));
    const auto t0 = RestartBudget::TimePoint{} + 1000h;
    std::vector<long> delays;
    for (int i = 0; i < 8; ++i)
        delays.push_back(budget.next(t0 + std::chrono::seconds(i))->count());
    CHECK(delays == std::vector<long>{1'000, 2'000, 4'000, 8'000, 16'000, 30'000, 30'000, 30'000});
}

TEST_CASE("more than max_restarts within the window means crashing; old restarts age out") {
    RestartBudget budget(3, Duration(60'000));
    const auto t0 = RestartBudget::TimePoint{} + 1000h;
    CHECK(budget.next(t0));
    CHECK(budget.next(t0 + 10s));
    CHECK(budget.next(t0 + 20s));
    CHECK(budget.recent(t0 + 20s) == 3);
    CHECK_FALSE(budget.next(t0 + 30s)); // the 4th within 60 s
    // A minute after the first restart it no longer counts; backoff follows the recent count.
    auto later = budget.next(t0 + 61s);
    REQUIRE(later);
    CHECK(*later == Duration(4'000));
    CHECK(budget.recent(t0 + 200s) == 0);
    budget.reset();
    CHECK(budget.next(t0 + 62s) == Duration(1'000));
}

TEST_CASE("slot health names") {
    using releasectl::SlotHealth;
    CHECK(releasectl::to_string(SlotHealth::healthy) == "healthy");
    CHECK(releasectl::to_string(SlotHealth::crashing) == "crashing");
    CHECK(releasectl::to_string(SlotHealth::restarting) == "restarting");
}
