#include "controller/analysis.hpp"

#include <fmt/format.h>

#include <cmath>
#include <utility>

namespace releasectl {

namespace {

// Limits compare with a hair of tolerance so that a value exactly at a limit
// passes even when the limit itself is a sum/product of doubles (0.01 + 0.02).
bool exceeds(double value, double limit) {
    return value > limit + 1e-9 * std::max(1.0, std::fabs(limit));
}

double rate_of(std::uint64_t errors, std::uint64_t requests) {
    return requests == 0 ? 0.0 : static_cast<double>(errors) / static_cast<double>(requests);
}

std::string trim_zeros(std::string text) {
    if (text.find('.') == std::string::npos) return text;
    while (!text.empty() && text.back() == '0') text.pop_back();
    if (!text.empty() && text.back() == '.') text.pop_back();
    return text;
}

std::string percent_with(double fraction, int decimals) {
    return fmt::format("{:.{}f}%", fraction * 100.0, decimals);
}

// "value > limit" where both would print the same at the usual precision
// ("5.0% > 5.0%") gets more digits until they differ ("5.01% > 5.00%").
std::pair<std::string, std::string> distinct_percents(double value, double limit) {
    std::string a = format_percent(value), b = format_percent(limit);
    for (int decimals = 2; a == b && decimals <= 4; ++decimals) a = percent_with(value, decimals), b = percent_with(limit, decimals);
    return {a, b};
}
std::pair<std::string, std::string> distinct_seconds(double value, double limit) {
    std::string a = format_seconds(value), b = format_seconds(limit);
    if (a == b) {
        a = trim_zeros(fmt::format("{:.4f}", value)) + "s";
        b = trim_zeros(fmt::format("{:.4f}", limit)) + "s";
    }
    return {a, b};
}

} // namespace

const char* to_string(VerdictKind kind) {
    switch (kind) {
    case VerdictKind::pass: return "pass";
    case VerdictKind::fail: return "fail";
    case VerdictKind::inconclusive: return "inconclusive";
    }
    return "inconclusive";
}

std::optional<VerdictKind> verdict_kind_from_string(std::string_view text) {
    if (text == "pass") return VerdictKind::pass;
    if (text == "fail") return VerdictKind::fail;
    if (text == "inconclusive") return VerdictKind::inconclusive;
    return std::nullopt;
}

std::string format_percent(double fraction) {
    const double percent = fraction * 100.0;
    if (percent != 0.0 && std::fabs(percent) < 1.0) return fmt::format("{:.2f}%", percent);
    return fmt::format("{:.1f}%", percent);
}

std::string format_seconds(double seconds) {
    if (seconds < 0.010) return trim_zeros(fmt::format("{:.2f}", seconds * 1000.0)) + "ms";
    if (seconds < 1.0) return fmt::format("{:.0f}ms", seconds * 1000.0);
    return trim_zeros(fmt::format("{:.2f}", seconds)) + "s";
}

WindowNumbers WindowNumbers::from(const proxy::SlotStats& window) {
    return WindowNumbers{window.requests(), window.errors(), window.latency_quantile(0.95)};
}

std::string Verdict::summary() const {
    std::string text = fmt::format("{}: {} requests, error rate {}, p95 {}", to_string(kind), requests,
                                   format_percent(error_rate), format_seconds(p95_seconds));
    if (!reasons.empty()) {
        text += " (";
        for (std::size_t i = 0; i < reasons.size(); ++i) {
            if (i) text += "; ";
            text += reasons[i];
        }
        text += ")";
    }
    return text;
}

Verdict judge(const WindowNumbers& candidate, const std::optional<WindowNumbers>& baseline,
              const RolloutConfig& policy) {
    Verdict verdict;
    verdict.requests = candidate.requests;
    verdict.errors = candidate.errors;
    verdict.error_rate = rate_of(candidate.errors, candidate.requests);
    verdict.p95_seconds = candidate.p95_seconds;
    if (baseline) {
        verdict.baseline_requests = baseline->requests;
        verdict.baseline_error_rate = rate_of(baseline->errors, baseline->requests);
        verdict.baseline_p95_seconds = baseline->p95_seconds;
    }

    if (candidate.requests < policy.min_requests) {
        verdict.kind = VerdictKind::inconclusive;
        verdict.reasons.push_back(fmt::format("only {} requests in the window, need {}",
                                              candidate.requests, policy.min_requests));
        return verdict;
    }

    const double max_p95_seconds = static_cast<double>(policy.max_p95.count()) / 1000.0;
    if (exceeds(verdict.error_rate, policy.max_error_rate)) {
        auto [value, limit] = distinct_percents(verdict.error_rate, policy.max_error_rate);
        verdict.reasons.push_back(fmt::format("error rate {} > {}", value, limit));
    }
    if (exceeds(verdict.p95_seconds, max_p95_seconds)) {
        auto [value, limit] = distinct_seconds(verdict.p95_seconds, max_p95_seconds);
        verdict.reasons.push_back(fmt::format("p95 {} > {}", value, limit));
    }

    // The baseline only counts when it has a meaningful sample of its own.
    const bool baseline_usable = baseline && baseline->requests > 0 &&
                                 baseline->requests >= policy.min_requests;
    if (baseline_usable && policy.max_error_rate_increase) {
        const double limit = *verdict.baseline_error_rate + *policy.max_error_rate_increase;
        if (exceeds(verdict.error_rate, limit))
            verdict.reasons.push_back(fmt::format(
                "error rate {} > live slot's {} + {} (max_error_rate_increase)",
                format_percent(verdict.error_rate), format_percent(*verdict.baseline_error_rate),
                format_percent(*policy.max_error_rate_increase)));
    }
    if (baseline_usable && policy.max_p95_ratio) {
        const double limit = *verdict.baseline_p95_seconds * *policy.max_p95_ratio;
        if (exceeds(verdict.p95_seconds, limit))
            verdict.reasons.push_back(fmt::format(
                "p95 {} > {} x live slot's {} (max_p95_ratio)", format_seconds(verdict.p95_seconds),
                trim_zeros(fmt::format("{:.2f}", *policy.max_p95_ratio)),
                format_seconds(*verdict.baseline_p95_seconds)));
    }

    verdict.kind = verdict.reasons.empty() ? VerdictKind::pass : VerdictKind::fail;
    if (verdict.kind == VerdictKind::pass)
        verdict.reasons.push_back(fmt::format("error rate {} <= {}, p95 {} <= {}",
                                              format_percent(verdict.error_rate),
                                              format_percent(policy.max_error_rate),
                                              format_seconds(verdict.p95_seconds),
                                              format_seconds(max_p95_seconds)));
    return verdict;
}

Verdict judge(const proxy::SlotStats& candidate_window, const proxy::SlotStats* baseline_window,
              const RolloutConfig& policy) {
    std::optional<WindowNumbers> baseline;
    if (baseline_window) baseline = WindowNumbers::from(*baseline_window);
    return judge(WindowNumbers::from(candidate_window), baseline, policy);
}

} // namespace releasectl
