#pragma once
// A small writer for the Prometheus text exposition format 0.0.4 (what
// `/metrics` serves; prometheus-cpp is not packaged for us). Pure value code:
// the scrape path may allocate, the request path never calls this.
//
// Samples are grouped per family in first-use order, so callers may emit in any
// order (e.g. slot by slot) and every family still appears as one block with
// its HELP and TYPE lines exactly once, as the format requires.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace releasectl::proxy::prom {

struct Label {
    std::string_view name;  // trusted: [a-zA-Z_][a-zA-Z0-9_]*, never "le" for histograms
    std::string_view value; // anything; escaped on output
};
using Labels = std::initializer_list<Label>;

// Numbers as Prometheus parses them (Go ParseFloat): locale-independent,
// shortest round-trip decimal, "+Inf", "-Inf", "NaN".
std::string format_value(double value);
std::string format_value(std::uint64_t value);
// Label value escaping: backslash, double quote, line feed.
std::string escape_label_value(std::string_view value);
// HELP text escaping: backslash, line feed.
std::string escape_help(std::string_view text);
// [a-zA-Z_:][a-zA-Z0-9_:]* / [a-zA-Z_][a-zA-Z0-9_]* (labels starting "__" are reserved).
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

class TextWriter {
public:
    // Counter names should end in "_total" (promtool lints it); `value` is cumulative.
    void counter(std::string_view name, std::string_view help, Labels labels, std::uint64_t value);
    void counter(std::string_view name, std::string_view help, Labels labels, double value);
    void gauge(std::string_view name, std::string_view help, Labels labels, double value);
    // A histogram series. `upper_bounds` ascending and finite; `counts` has one
    // entry per bound plus a final overflow entry (observations above the last
    // bound), NOT cumulative: the writer accumulates, so `le="+Inf"` equals
    // `_count` and the buckets are monotone by construction.
    void histogram(std::string_view name, std::string_view help, Labels labels, std::span<const double> upper_bounds,
                   std::span<const std::uint64_t> counts, double sum);

    // The exposition text (ends with a line feed when not empty).
    std::string str() const;

private:
    struct Family {
        std::string name;
        std::string header; // "# HELP ...\n# TYPE ...\n"
        std::string samples;
    };
    Family& family(std::string_view name, std::string_view type, std::string_view help);
    static void append_sample(std::string& out, std::string_view name, Labels labels, std::string_view extra_name,
                              std::string_view extra_value, std::string_view value);

    std::vector<Family> families_; // first-use order
};

} // namespace releasectl::proxy::prom
