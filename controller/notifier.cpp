#include "controller/notifier.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>

namespace releasectl {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

struct Url {
    std::string host, port = "80", path = "/";
};

std::optional<Url> parse_url(const std::string& url) {
    if (!url.starts_with("http://")) return std::nullopt;
    std::string rest = url.substr(7);
    Url out;
    auto slash = rest.find('/');
    if (slash != std::string::npos) {
        out.path = rest.substr(slash);
        rest = rest.substr(0, slash);
    }
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos) return std::nullopt;
        if (close + 1 < rest.size() && rest[close + 1] == ':') out.port = rest.substr(close + 2);
        rest = rest.substr(1, close - 1);
    } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
        out.port = rest.substr(colon + 1);
        rest = rest.substr(0, colon);
    }
    out.host = rest;
    if (out.host.empty()) return std::nullopt;
    return out;
}

asio::awaitable<void> post_json(asio::io_context& io, NotifyConfig target, std::string body, std::string event) {
    auto url = parse_url(target.url);
    if (!url) {
        spdlog::warn("notify {}: unsupported url {}", event, target.url);
        co_return;
    }
    tcp::resolver resolver(io);
    auto socket = std::make_shared<tcp::socket>(io);
    asio::steady_timer deadline(io);
    deadline.expires_after(target.timeout);
    bool timed_out = false;
    deadline.async_wait([socket, &timed_out](const boost::system::error_code& ec) {
        if (ec) return;
        timed_out = true;
        boost::system::error_code ignored;
        socket->close(ignored);
    });
    auto [rec, endpoints] = co_await resolver.async_resolve(url->host, url->port, nothrow_awaitable);
    if (rec) {
        spdlog::warn("notify {} to {}: {}", event, target.url, rec.message());
        deadline.cancel();
        co_return;
    }
    auto [cec, ep] = co_await asio::async_connect(*socket, endpoints, nothrow_awaitable);
    std::string request = "POST " + url->path + " HTTP/1.1\r\nHost: " + url->host + ":" + url->port +
                          "\r\nContent-Type: application/json\r\nUser-Agent: releasectl\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    std::string response;
    boost::system::error_code failure = cec;
    if (!failure) {
        auto [wec, wn] = co_await asio::async_write(*socket, asio::buffer(request), nothrow_awaitable);
        failure = wec;
    }
    if (!failure) {
        char buffer[512];
        auto [ec, n] = co_await socket->async_read_some(asio::buffer(buffer), nothrow_awaitable);
        failure = ec;
        response.assign(buffer, n);
    }
    deadline.cancel();
    if (failure || response.size() < 12) {
        spdlog::warn("notify {} to {} failed: {}", event, target.url, timed_out ? "timed out" : failure.message());
    } else if (response[9] != '2') {
        spdlog::warn("notify {} to {}: receiver answered {}", event, target.url, response.substr(9, 3));
    } else {
        spdlog::debug("notify {} to {}: ok", event, target.url);
    }
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
    for (const auto& target : targets_) asio::co_spawn(io_, post_json(io_, target, body, event), asio::detached);
}

} // namespace releasectl
