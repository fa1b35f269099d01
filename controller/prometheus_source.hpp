#pragma once
// [analysis] source = "prometheus": the candidate's window judged from a
// Prometheus server instead of this process's own counters, so a fleet of
// releasectl instances behind a load balancer is judged as one. Any query
// error or empty result makes the window inconclusive, never a pass.
#include "controller/analysis.hpp"
#include "controller/config.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <optional>
#include <string>

namespace releasectl {

// Substitutes ${slot} and ${window} in a PromQL template.
std::string expand_query(std::string_view query_template, std::string_view slot, std::string_view window);
// "10s", "500ms", "5m": a Prometheus range for a check interval.
std::string promql_duration(Duration d);
// The single number of an instant-query answer (/api/v1/query JSON), or
// nullopt with *why set: an error status, an empty vector, NaN, bad JSON.
std::optional<double> parse_instant_value(std::string_view json_body, std::string* why);

// Queries requests, errors and p95 for one slot over `window`.
boost::asio::awaitable<std::optional<WindowNumbers>> query_window(boost::asio::io_context& io, const AnalysisConfig& config,
                                                                  std::string slot, Duration window, std::string* why);

} // namespace releasectl
