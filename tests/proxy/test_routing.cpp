// Slot choice: smooth weighted round robin, sticky buckets, route-table publication.
#include "proxy/route_table.hpp"
#include "proxy/slot_chooser.hpp"

#include <doctest/doctest.h>

#include <map>
#include <thread>

using namespace releasectl::proxy;

namespace {
RouteTable table_with(std::uint32_t blue, std::uint32_t green, int live = 0, int candidate = 1) {
    RouteTable t;
    t.slots.push_back({"blue", {}, blue, "r1"});
    t.slots.push_back({"green", {}, green, "r2"});
    t.live = live;
    t.candidate = candidate;
    return t;
}
} // namespace

TEST_CASE("smooth WRR is exact within one cycle and interleaves") {
    for (auto [blue, green] : {std::pair{90u, 10u}, {75u, 25u}, {50u, 50u}, {1u, 99u}, {100u, 0u}, {0u, 100u}, {3u, 7u}}) {
        auto table = table_with(blue, green);
        table.version = 7;
        SmoothWeightedRoundRobin rr;
        std::map<int, unsigned> counts;
        for (unsigned i = 0; i < (blue + green) * 3; ++i) ++counts[rr.pick(table)];
        CHECK(counts[0] == blue * 3);
        CHECK(counts[1] == green * 3);
    }
    // 90/10: the candidate never gets two in a row
    auto table = table_with(90, 10);
    SmoothWeightedRoundRobin rr;
    int previous = -1;
    for (int i = 0; i < 100; ++i) {
        int pick = rr.pick(table);
        if (pick == 1) CHECK(previous != 1);
        previous = pick;
    }
}

TEST_CASE("smooth WRR restarts its cycle when the table changes") {
    SmoothWeightedRoundRobin rr;
    auto a = table_with(90, 10);
    a.version = 1;
    for (int i = 0; i < 5; ++i) rr.pick(a);
    auto b = table_with(50, 50);
    b.version = 2;
    std::map<int, unsigned> counts;
    for (int i = 0; i < 100; ++i) ++counts[rr.pick(b)];
    CHECK(counts[0] == 50);
    CHECK(counts[1] == 50);
}

TEST_CASE("all weights zero routes to the live slot") {
    auto table = table_with(0, 0, 1, -1);
    SmoothWeightedRoundRobin rr;
    CHECK(rr.pick(table) == 1);
    CHECK(slot_for_bucket(table, 1234) == 1);
}

TEST_CASE("sticky buckets: the candidate takes the lowest buckets and keeps them as it grows") {
    for (std::uint32_t bucket = 0; bucket < kStickyBuckets; bucket += 7) {
        bool was_candidate = false;
        for (std::uint32_t weight : {0u, 10u, 25u, 50u, 75u, 100u}) {
            auto table = table_with(100 - weight, weight);
            bool on_candidate = slot_for_bucket(table, bucket) == 1;
            CHECK(on_candidate == (bucket < weight * 100));
            if (was_candidate) CHECK(on_candidate); // never leaves while the share grows
            was_candidate = on_candidate;
        }
        // rollback: everyone returns to live
        CHECK(slot_for_bucket(table_with(100, 0, 0, -1), bucket) == 0);
    }
}

TEST_CASE("sticky share matches the weight over all buckets") {
    auto table = table_with(90, 10);
    unsigned on_candidate = 0;
    for (std::uint32_t b = 0; b < kStickyBuckets; ++b) on_candidate += slot_for_bucket(table, b) == 1;
    CHECK(on_candidate == 1000);
}

TEST_CASE("cookie parsing") {
    CHECK(cookie_value("a=1; releasectl_bucket=42; b=2", "releasectl_bucket") == "42");
    CHECK(cookie_value("releasectl_bucket=7", "releasectl_bucket") == "7");
    CHECK(cookie_value("xreleasectl_bucket=7", "releasectl_bucket").empty());
    CHECK(bucket_from_cookie_header("releasectl_bucket=9999", "releasectl_bucket") == 9999u);
    CHECK_FALSE(bucket_from_cookie_header("releasectl_bucket=10000", "releasectl_bucket"));
    CHECK_FALSE(bucket_from_cookie_header("releasectl_bucket=-1", "releasectl_bucket"));
    CHECK_FALSE(bucket_from_cookie_header("releasectl_bucket=12a", "releasectl_bucket"));
    CHECK_FALSE(bucket_from_cookie_header("releasectl_bucket=", "releasectl_bucket"));
}

TEST_CASE("publisher: readers see the newest table; old ones are reclaimed once every reader moved on") {
    RouteTablePublisher publisher(2);
    publisher.publish(table_with(100, 0));
    CHECK(publisher.load(0).slots[0].weight == 100);
    CHECK(publisher.load(1).slots[0].weight == 100);
    auto v = publisher.publish(table_with(50, 50));
    CHECK(publisher.load(0).version == v);
    CHECK(publisher.load(0).slots[1].weight == 50);
    CHECK(publisher.current().version == v);
    // Concurrent readers while the writer publishes: every table read is whole.
    std::atomic<bool> stop{false};
    std::atomic<unsigned> torn{0};
    std::thread reader([&] {
        while (!stop.load()) {
            const auto& t = publisher.load(1);
            if (t.slots.size() != 2 || t.slots[0].weight + t.slots[1].weight != 100) ++torn;
        }
    });
    for (unsigned i = 0; i < 20000; ++i) {
        unsigned w = i % 101;
        publisher.publish(table_with(100 - w, w));
        (void)publisher.load(0);
    }
    stop = true;
    reader.join();
    CHECK(torn == 0);
}
