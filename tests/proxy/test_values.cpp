// Settings parsing, latency quantiles, trusted proxies.
#include "proxy/settings.hpp"
#include "proxy/slot_stats.hpp"
#include "proxy/trusted_proxies.hpp"

#include <doctest/doctest.h>

#include <cmath>

using namespace releasectl::proxy;

TEST_CASE("durations and sizes") {
    CHECK(parse_duration("250ms") == Duration(250));
    CHECK(parse_duration("10s") == Duration(10'000));
    CHECK(parse_duration("5m") == Duration(300'000));
    CHECK(parse_duration("1h") == Duration(3'600'000));
    CHECK(parse_duration("1.5s") == Duration(1500));
    CHECK(parse_duration("1500") == Duration(1500));
    CHECK_FALSE(parse_duration("10 s"));
    CHECK_FALSE(parse_duration("-1s"));
    CHECK_FALSE(parse_duration("ten"));
    CHECK(parse_size("64KiB") == 65536u);
    CHECK(parse_size("10MiB") == 10u * 1024 * 1024);
    CHECK(parse_size("1GiB") == 1024ull * 1024 * 1024);
    CHECK(parse_size("10MB") == 10'000'000u);
    CHECK_FALSE(parse_size("99999999999999999999GiB"));
    CHECK_FALSE(parse_size("12 KiB"));
    CHECK(format_duration(Duration(300'000)) == "5m");
    CHECK(format_duration(Duration(1500)) == "1500ms");
}

TEST_CASE("upstream and listen addresses") {
    std::string error;
    auto tcp = UpstreamAddress::parse("127.0.0.1:9001", &error);
    REQUIRE(tcp);
    CHECK(tcp->host == "127.0.0.1");
    CHECK(tcp->port == 9001);
    auto v6 = UpstreamAddress::parse("[::1]:80", &error);
    REQUIRE(v6);
    CHECK(v6->host == "::1");
    CHECK(v6->to_string() == "[::1]:80");
    auto unix_socket = UpstreamAddress::parse("unix:/run/app.sock", &error);
    REQUIRE(unix_socket);
    CHECK(unix_socket->kind == UpstreamAddress::Kind::unix_socket);
    CHECK_FALSE(UpstreamAddress::parse("unix:relative.sock", &error));
    CHECK_FALSE(UpstreamAddress::parse("127.0.0.1", &error));
    CHECK_FALSE(UpstreamAddress::parse("127.0.0.1:0", &error));
    CHECK_FALSE(UpstreamAddress::parse("127.0.0.1:70000", &error));
    CHECK(ListenAddress::parse("0.0.0.0:80", &error)->port == 80);
}

TEST_CASE("http:// and https:// upstreams: scheme, default port, no path") {
    std::string error;
    auto plain = UpstreamAddress::parse("http://127.0.0.1:9001", &error);
    REQUIRE(plain);
    CHECK_FALSE(plain->tls);
    CHECK(plain->to_string() == "127.0.0.1:9001");
    CHECK(UpstreamAddress::parse("http://app.internal", &error)->port == 80);

    auto secure = UpstreamAddress::parse("https://127.0.0.1:9443", &error);
    REQUIRE(secure);
    CHECK(secure->tls);
    CHECK(secure->host == "127.0.0.1");
    CHECK(secure->port == 9443);
    CHECK(secure->to_string() == "https://127.0.0.1:9443");
    auto default_port = UpstreamAddress::parse("https://app.internal/", &error);
    REQUIRE(default_port);
    CHECK(default_port->port == 443);
    CHECK(default_port->host == "app.internal");
    auto v6 = UpstreamAddress::parse("https://[::1]", &error);
    REQUIRE(v6);
    CHECK(v6->to_string() == "https://[::1]:443");
    CHECK_FALSE(*secure == *plain);

    CHECK_FALSE(UpstreamAddress::parse("https://127.0.0.1:9443/app", &error));
    CHECK(error.find("without a path") != std::string::npos);
    CHECK_FALSE(UpstreamAddress::parse("ftp://127.0.0.1:21", &error));
    CHECK(error.find("http:// and https://") != std::string::npos);
    CHECK_FALSE(UpstreamAddress::parse("https://:443", &error));
}

TEST_CASE("latency buckets are geometric with 8 per doubling") {
    CHECK(LatencyBuckets::index_for(0) == 0);
    CHECK(LatencyBuckets::index_for(100) == 0);
    CHECK(LatencyBuckets::index_for(101) == 1);
    for (std::uint64_t micros : {150ull, 1'000ull, 50'000ull, 2'000'000ull, 90'000'000ull}) {
        auto i = LatencyBuckets::index_for(micros);
        CHECK(static_cast<double>(micros) <= LatencyBuckets::upper_micros(i) * (1 + 1e-9));
        CHECK(static_cast<double>(micros) > LatencyBuckets::upper_micros(i - 1) * (1 - 1e-9));
    }
    CHECK(LatencyBuckets::index_for(10'000'000'000ull) == LatencyBuckets::kCount - 1);
}

TEST_CASE("p95 from the buckets is within 5 % of the exact one") {
    for (double scale : {0.002, 0.05, 0.3, 1.0, 4.0}) {
        SlotStats stats;
        std::vector<double> samples;
        for (int i = 1; i <= 1000; ++i) {
            double seconds = scale * (0.5 + static_cast<double>(i) / 1000.0); // uniform in [0.5s, 1.5s]*scale
            samples.push_back(seconds);
            stats.latency[LatencyBuckets::index_for(static_cast<std::uint64_t>(seconds * 1e6))]++;
            stats.status_class[2]++;
        }
        double exact = samples[949];
        double estimate = stats.latency_quantile(0.95);
        CHECK(std::abs(estimate - exact) / exact < 0.05);
    }
}

TEST_CASE("windows and error rates") {
    SlotStats before, after;
    before.status_class[2] = 100;
    before.status_class[5] = 1;
    after.status_class[2] = 190;
    after.status_class[5] = 11;
    auto window = after.minus(before);
    CHECK(window.requests() == 100);
    CHECK(window.errors() == 10);
    CHECK(window.error_rate() == doctest::Approx(0.1));
    SlotStats empty;
    CHECK(empty.error_rate() == 0.0);
    CHECK(empty.latency_quantile(0.95) == 0.0);
}

TEST_CASE("trusted proxies: CIDR ranges, v4 and v6") {
    TrustedProxies trusted;
    CHECK(trusted.add("10.0.0.0/8").empty());
    CHECK(trusted.add("192.168.1.7").empty());
    CHECK(trusted.add("fd00::/8").empty());
    CHECK_FALSE(trusted.add("10.0.0.0/33").empty());
    CHECK_FALSE(trusted.add("not-an-ip").empty());
    CHECK(trusted.contains("10.1.2.3"));
    CHECK(trusted.contains("::ffff:10.1.2.3"));
    CHECK_FALSE(trusted.contains("11.0.0.1"));
    CHECK(trusted.contains("192.168.1.7"));
    CHECK_FALSE(trusted.contains("192.168.1.8"));
    CHECK(trusted.contains("fd12::1"));
    CHECK_FALSE(trusted.contains("fe80::1"));
}
