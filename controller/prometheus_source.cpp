#include "controller/prometheus_source.hpp"

#include "controller/http_client.hpp"

#include <boost/json/parse.hpp>

#include <cmath>
#include <stdexcept>
#include <string>

namespace releasectl {

std::string expand_query(std::string_view query_template, std::string_view slot, std::string_view window) {
    std::string out(query_template);
    auto replace_all = [&](std::string_view key, std::string_view value) {
        for (std::size_t at = out.find(key); at != std::string::npos; at = out.find(key, at + value.size()))
            out.replace(at, key.size(), value);
    };
    replace_all("${slot}", slot);
    replace_all("${window}", window);
    return out;
}

std::string promql_duration(Duration d) {
    auto ms = d.count();
    if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

std::optional<double> parse_instant_value(std::string_view json_body, std::string* why) {
    boost::system::error_code ec;
    auto value = boost::json::parse(json_body, ec);
    if (ec || !value.is_object()) {
        *why = "prometheus answered something that is not JSON";
        return std::nullopt;
    }
    const auto& root = value.as_object();
    auto* status = root.if_contains("status");
    if (!status || !status->is_string() || status->as_string() != "success") {
        auto* error = root.if_contains("error");
        *why = "prometheus query failed: " + (error && error->is_string() ? std::string(error->as_string()) : std::string("unknown error"));
        return std::nullopt;
    }
    auto* data = root.if_contains("data");
    const boost::json::value* result = data && data->is_object() ? data->as_object().if_contains("result") : nullptr;
    const boost::json::value* pair = nullptr;
    if (result && result->is_array()) {
        if (result->as_array().empty()) {
            *why = "prometheus returned no data (empty result)";
            return std::nullopt;
        }
        const auto& first = result->as_array().front();
        if (first.is_object()) pair = first.as_object().if_contains("value");
    } else if (result && result->is_array() == false && data->as_object().if_contains("resultType") &&
               data->as_object().at("resultType") == "scalar") {
        pair = result;
    }
    if (!pair || !pair->is_array() || pair->as_array().size() != 2 || !pair->as_array()[1].is_string()) {
        *why = "prometheus answer has no sample value";
        return std::nullopt;
    }
    std::string text(pair->as_array()[1].as_string());
    double number = 0;
    try {
        number = std::stod(text);
    } catch (...) {
        *why = "prometheus sample is not a number: " + text;
        return std::nullopt;
    }
    if (std::isnan(number)) {
        *why = "prometheus returned NaN (no samples in the window)";
        return std::nullopt;
    }
    return number;
}

boost::asio::awaitable<std::optional<WindowNumbers>> query_window(boost::asio::io_context& io, const AnalysisConfig& config,
                                                                  std::string slot, Duration window, std::string* why) {
    const std::string range = promql_duration(window);
    auto instant = [&](const std::string& query_template) -> boost::asio::awaitable<std::optional<double>> {
        std::string query = expand_query(query_template, slot, range);
        std::string url = config.prometheus_url;
        while (!url.empty() && url.back() == '/') url.pop_back();
        HttpResult response;
        try {
            response = co_await http_request(io, "GET", url + "/api/v1/query?query=" + url_encode(query), "", "",
                                             std::chrono::milliseconds(5000));
        } catch (const std::exception& e) {
            // A malformed answer must not end the analysis loop (an exception
            // escaping it would stop every later check, silently).
            *why = std::string("prometheus answer unusable: ") + e.what();
            co_return std::nullopt;
        }
        if (!response.ok) {
            *why = "prometheus unreachable: " + response.error;
            co_return std::nullopt;
        }
        co_return parse_instant_value(response.body, why);
    };
    auto requests = co_await instant(config.requests_query);
    if (!requests) co_return std::nullopt;
    auto errors = co_await instant(config.errors_query);
    if (!errors) co_return std::nullopt;
    for (double count : {*requests, *errors})
        if (!std::isfinite(count) || count < 0) {
            *why = "prometheus returned an impossible request count: " + std::to_string(count);
            co_return std::nullopt;
        }
    WindowNumbers numbers;
    numbers.requests = static_cast<std::uint64_t>(std::llround(*requests));
    numbers.errors = static_cast<std::uint64_t>(std::llround(*errors));
    if (numbers.requests > 0) {
        auto p95 = co_await instant(config.p95_query);
        if (!p95) co_return std::nullopt;
        numbers.p95_seconds = *p95;
    }
    co_return numbers;
}

} // namespace releasectl
