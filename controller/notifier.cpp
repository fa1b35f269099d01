#include "controller/notifier.hpp"

#include "controller/http_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <chrono>

namespace releasectl {
namespace asio = boost::asio;

namespace {

asio::awaitable<void> post_json(asio::io_context& io, NotifyConfig target, std::string body, std::string event) {
    auto result = co_await http_request(io, "POST", target.url, std::move(body), "application/json", target.timeout);
    if (!result.ok) spdlog::warn("notify {} to {} failed: {}", event, target.url, result.error);
    else if (result.status / 100 != 2) spdlog::warn("notify {} to {}: receiver answered {}", event, target.url, result.status);
    else spdlog::debug("notify {} to {}: ok", event, target.url);
}

} // namespace

Notifier::Notifier(asio::io_context& io, std::vector<NotifyConfig> targets) : io_(io), targets_(std::move(targets)) {}

void Notifier::send(const std::string& event, const boost::json::object& payload) {
    if (targets_.empty()) return;
    boost::json::object message = payload;
    message["event"] = event;
    message["time"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
    std::string body = boost::json::serialize(message);
    // Fire and forget: a slow or dead receiver never holds up a rollout step.
    for (const auto& target : targets_) asio::co_spawn(io_, post_json(io_, target, body, event), asio::detached);
}

} // namespace releasectl
