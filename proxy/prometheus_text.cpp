#include "prometheus_text.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace releasectl::proxy::prom {

std::string format_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    // to_chars is locale-independent and gives the shortest text that parses
    // back to the same double. Plain decimals in the everyday range ("0.0001"
    // rather than "1e-04": `le` values are matched as strings in PromQL, so
    // they should look like everyone else's), exponents only at the extremes.
    char buffer[400];
    const double magnitude = std::fabs(value);
    const bool plain = magnitude == 0 || (magnitude >= 1e-6 && magnitude < 1e15);
    auto [end, ec] = plain ? std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed)
                           : std::to_chars(buffer, buffer + sizeof buffer, value);
    if (ec != std::errc{}) return "NaN";
    return std::string(buffer, end);
}

std::string format_value(std::uint64_t value) {
    char buffer[32];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, ec == std::errc{} ? end : buffer);
}

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string escape_help(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

namespace {
bool is_alpha_(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
} // namespace

bool valid_metric_name(std::string_view name) {
    if (name.empty() || !(is_alpha_(name[0]) || name[0] == ':')) return false;
    return std::all_of(name.begin(), name.end(), [](char c) { return is_alpha_(c) || is_digit(c) || c == ':'; });
}

bool valid_label_name(std::string_view name) {
    if (name.empty() || !is_alpha_(name[0]) || name.starts_with("__")) return false;
    return std::all_of(name.begin(), name.end(), [](char c) { return is_alpha_(c) || is_digit(c); });
}

TextWriter::Family& TextWriter::family(std::string_view name, std::string_view type, std::string_view help) {
    for (auto& f : families_)
        if (f.name == name) return f;
    // Names are compile-time literals in our code: a bad one is a programming
    // error that the unit tests catch, not a runtime condition.
    if (!valid_metric_name(name)) throw std::invalid_argument("invalid metric name: " + std::string(name));
    Family f;
    f.name = std::string(name);
    f.header = "# HELP " + f.name + " " + escape_help(help) + "\n# TYPE " + f.name + " " + std::string(type) + "\n";
    families_.push_back(std::move(f));
    return families_.back();
}

void TextWriter::append_sample(std::string& out, std::string_view name, Labels labels, std::string_view extra_name,
                               std::string_view extra_value, std::string_view value) {
    out += name;
    if (labels.size() != 0 || !extra_name.empty()) {
        out += '{';
        bool first = true;
        auto put = [&](std::string_view label, std::string_view label_value) {
            if (!valid_label_name(label)) throw std::invalid_argument("invalid label name: " + std::string(label));
            if (!first) out += ',';
            first = false;
            out += label;
            out += "=\"";
            out += escape_label_value(label_value);
            out += '"';
        };
        for (const auto& l : labels) put(l.name, l.value);
        if (!extra_name.empty()) put(extra_name, extra_value);
        out += '}';
    }
    out += ' ';
    out += value;
    out += '\n';
}

void TextWriter::counter(std::string_view name, std::string_view help, Labels labels, std::uint64_t value) {
    append_sample(family(name, "counter", help).samples, name, labels, {}, {}, format_value(value));
}

void TextWriter::counter(std::string_view name, std::string_view help, Labels labels, double value) {
    append_sample(family(name, "counter", help).samples, name, labels, {}, {}, format_value(value));
}

void TextWriter::gauge(std::string_view name, std::string_view help, Labels labels, double value) {
    append_sample(family(name, "gauge", help).samples, name, labels, {}, {}, format_value(value));
}

void TextWriter::histogram(std::string_view name, std::string_view help, Labels labels,
                           std::span<const double> upper_bounds, std::span<const std::uint64_t> counts, double sum) {
    if (counts.size() != upper_bounds.size() + 1)
        throw std::invalid_argument("histogram " + std::string(name) + ": counts must have one overflow entry");
    for (const auto& l : labels)
        if (l.name == "le") throw std::invalid_argument("histogram " + std::string(name) + ": 'le' is reserved");
    auto& out = family(name, "histogram", help).samples;
    const std::string bucket_name = std::string(name) + "_bucket";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < upper_bounds.size(); ++i) {
        cumulative += counts[i];
        append_sample(out, bucket_name, labels, "le", format_value(upper_bounds[i]), format_value(cumulative));
    }
    cumulative += counts.back();
    append_sample(out, bucket_name, labels, "le", "+Inf", format_value(cumulative));
    append_sample(out, std::string(name) + "_sum", labels, {}, {}, format_value(sum));
    append_sample(out, std::string(name) + "_count", labels, {}, {}, format_value(cumulative));
}

std::string TextWriter::str() const {
    std::string out;
    for (const auto& f : families_) {
        if (f.samples.empty()) continue;
        out += f.header;
        out += f.samples;
    }
    return out;
}

} // namespace releasectl::proxy::prom
