// proxy/prometheus_text: the exposition writer on its own.
#include "proxy/prometheus_text.hpp"

#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <limits>
#include <string>

using namespace releasectl::proxy::prom;

namespace {
std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
    return n;
}
} // namespace

TEST_CASE("numbers are spelled the way Prometheus parses them") {
    CHECK(format_value(0.0) == "0");
    CHECK(format_value(1.0) == "1");
    CHECK(format_value(0.25) == "0.25");
    CHECK(format_value(0.04695) == "0.04695");
    CHECK(format_value(-3.5) == "-3.5");
    CHECK(format_value(1700000000.5) == "1700000000.5");
    CHECK(format_value(1e21) == "1e+21");
    CHECK(format_value(0.0001) == "0.0001");
    CHECK(format_value(0.000001) == "0.000001");
    CHECK(format_value(1e-7) == "1e-07");
    CHECK(format_value(123456789012345.0) == "123456789012345");
    CHECK(format_value(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
    CHECK(format_value(std::numeric_limits<double>::quiet_NaN()) == "NaN");
    CHECK(format_value(std::uint64_t{0}) == "0");
    CHECK(format_value(std::uint64_t{18446744073709551615ull}) == "18446744073709551615");
    // Round trip: shortest text that parses back to the same double.
    for (double v : {0.1, 1.0 / 3.0, 123456.789, 5e-324, 1.7976931348623157e308})
        CHECK(std::strtod(format_value(v).c_str(), nullptr) == v);
}

TEST_CASE("label values escape backslash, double quote and line feed; HELP escapes backslash and line feed") {
    CHECK(escape_label_value("plain") == "plain");
    CHECK(escape_label_value("a\\b") == "a\\\\b");
    CHECK(escape_label_value("say \"hi\"") == "say \\\"hi\\\"");
    CHECK(escape_label_value("two\nlines") == "two\\nlines");
    CHECK(escape_label_value("tab\tstays") == "tab\tstays");
    CHECK(escape_help("a \"quote\" stays, \\ and \n do not") == "a \"quote\" stays, \\\\ and \\n do not");
}

TEST_CASE("names are validated") {
    CHECK(valid_metric_name("releasectl_requests_total"));
    CHECK(valid_metric_name("ns:rule_name"));
    CHECK_FALSE(valid_metric_name("1abc"));
    CHECK_FALSE(valid_metric_name("with-dash"));
    CHECK_FALSE(valid_metric_name(""));
    CHECK(valid_label_name("slot"));
    CHECK_FALSE(valid_label_name("__reserved"));
    CHECK_FALSE(valid_label_name("a:b"));
    TextWriter w;
    CHECK_THROWS(w.gauge("bad-name", "x", {}, 1.0));
    CHECK_THROWS(w.gauge("good", "x", {{"bad-label", "v"}}, 1.0));
}

TEST_CASE("HELP and TYPE appear once per family and a family is one contiguous block") {
    TextWriter w;
    w.counter("a_total", "A things.", {{"slot", "blue"}}, std::uint64_t{1});
    w.gauge("b", "B level.", {{"slot", "blue"}}, 2.0);
    w.counter("a_total", "A things.", {{"slot", "green"}}, std::uint64_t{3});
    w.gauge("b", "B level.", {{"slot", "green"}}, 4.0);
    const std::string expected = "# HELP a_total A things.\n"
                                 "# TYPE a_total counter\n"
                                 "a_total{slot=\"blue\"} 1\n"
                                 "a_total{slot=\"green\"} 3\n"
                                 "# HELP b B level.\n"
                                 "# TYPE b gauge\n"
                                 "b{slot=\"blue\"} 2\n"
                                 "b{slot=\"green\"} 4\n";
    CHECK(w.str() == expected);
}

TEST_CASE("a sample without labels has no braces; label values are escaped in place") {
    TextWriter w;
    w.gauge("up_like", "x", {}, 1.0);
    w.gauge("info", "x", {{"v", "a\"b\\c\nd"}}, 1.0);
    auto text = w.str();
    CHECK(text.find("up_like 1\n") != std::string::npos);
    CHECK(text.find("info{v=\"a\\\"b\\\\c\\nd\"} 1\n") != std::string::npos);
}

TEST_CASE("histograms: cumulative buckets, +Inf equals _count, _sum") {
    TextWriter w;
    const std::array<double, 3> bounds{0.1, 0.5, 1.0};
    const std::array<std::uint64_t, 4> counts{2, 0, 5, 3}; // last: above 1.0
    w.histogram("lat_seconds", "Latency.", {{"slot", "blue"}}, bounds, counts, 7.25);
    const std::string expected = "# HELP lat_seconds Latency.\n"
                                 "# TYPE lat_seconds histogram\n"
                                 "lat_seconds_bucket{slot=\"blue\",le=\"0.1\"} 2\n"
                                 "lat_seconds_bucket{slot=\"blue\",le=\"0.5\"} 2\n"
                                 "lat_seconds_bucket{slot=\"blue\",le=\"1\"} 7\n"
                                 "lat_seconds_bucket{slot=\"blue\",le=\"+Inf\"} 10\n"
                                 "lat_seconds_sum{slot=\"blue\"} 7.25\n"
                                 "lat_seconds_count{slot=\"blue\"} 10\n";
    CHECK(w.str() == expected);
    CHECK(count_of(w.str(), "# TYPE") == 1);
}

TEST_CASE("histogram arguments are checked") {
    TextWriter w;
    const std::array<double, 2> bounds{1, 2};
    const std::array<std::uint64_t, 2> too_few{1, 2};
    CHECK_THROWS(w.histogram("h", "x", {}, bounds, too_few, 0));
    const std::array<std::uint64_t, 3> counts{1, 2, 3};
    CHECK_THROWS(w.histogram("h", "x", {{"le", "1"}}, bounds, counts, 0));
}

TEST_CASE("an empty writer renders nothing") {
    TextWriter w;
    CHECK(w.str().empty());
}
