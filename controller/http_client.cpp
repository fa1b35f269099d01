#include "controller/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <optional>

namespace releasectl {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

} // namespace

std::optional<HttpUrl> parse_http_url(std::string_view url) {
    HttpUrl out;
    if (url.starts_with("http://")) {
        url.remove_prefix(7);
        out.port = "80";
    } else if (url.starts_with("https://")) {
        url.remove_prefix(8);
        out.tls = true;
        out.port = "443";
    } else {
        return std::nullopt;
    }
    std::string rest(url);
    if (auto slash = rest.find('/'); slash != std::string::npos) {
        out.target = rest.substr(slash);
        rest.resize(slash);
    }
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos) return std::nullopt;
        if (close + 1 < rest.size() && rest[close + 1] == ':') out.port = rest.substr(close + 2);
        rest = rest.substr(1, close - 1);
    } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
        out.port = rest.substr(colon + 1);
        rest.resize(colon);
    }
    out.host = rest;
    if (out.host.empty() || out.port.empty()) return std::nullopt;
    return out;
}

std::string request_message(const std::string& method, const HttpUrl& url, std::string_view accept,
                            const std::string& body, const std::string& content_type) {
    const bool default_port = url.port == (url.tls ? "443" : "80");
    const bool ipv6 = url.host.find(':') != std::string::npos;
    std::string message = method + " " + url.target + " HTTP/1.1\r\nHost: " + (ipv6 ? "[" + url.host + "]" : url.host) +
                          (default_port ? "" : ":" + url.port) + "\r\nUser-Agent: releasectl\r\nAccept: ";
    message.append(accept).append("\r\nConnection: close\r\n");
    if (!body.empty() || method == "POST")
        message += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    message += "\r\n" + body;
    return message;
}

std::string ParsedResponse::field(std::string_view name) const {
    std::string_view rest(head);
    while (true) {
        auto eol = rest.find("\r\n");
        if (eol == std::string_view::npos) return {};
        rest.remove_prefix(eol + 2);
        auto line = rest.substr(0, rest.find("\r\n"));
        auto colon = line.find(':');
        if (colon != name.size()) continue;
        bool same = true;
        for (std::size_t i = 0; i < colon && same; ++i)
            same = std::tolower(static_cast<unsigned char>(line[i])) == std::tolower(static_cast<unsigned char>(name[i]));
        if (!same) continue;
        auto value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
        return std::string(value);
    }
}

ParsedResponse parse_response(const std::string& response, bool head_request) {
    ParsedResponse out;
    auto head_end = response.find("\r\n\r\n");
    if (response.size() < 12 || !response.starts_with("HTTP/1.") || head_end == std::string::npos) {
        out.error = "malformed response";
        return out;
    }
    out.status = static_cast<unsigned>(std::atoi(response.c_str() + 9));
    out.head = response.substr(0, head_end + 2);
    out.body = response.substr(head_end + 4);
    std::string coding = out.field("transfer-encoding");
    for (auto& c : coding) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (coding == "chunked") {
        out.body = dechunk(out.body);
    } else if (auto length = out.field("content-length"); !length.empty() && !head_request) {
        if (out.body.size() < static_cast<std::size_t>(std::atoll(length.c_str()))) {
            out.error = "response body cut short";
            return out;
        }
    }
    out.ok = true;
    return out;
}

// Decodes a chunked body (responses from Prometheus and webhooks are small).
std::string dechunk(std::string_view body) {
    std::string out;
    while (!body.empty()) {
        auto line_end = body.find("\r\n");
        if (line_end == std::string_view::npos) break;
        // from_chars, not stoul: a garbage size from a peer must not throw on the control thread.
        std::size_t size = 0;
        auto digits = body.substr(0, line_end);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size, 16);
        if (ec != std::errc{} || end == digits.data()) break;
        body.remove_prefix(line_end + 2);
        if (size == 0 || size > body.size()) break;
        out.append(body.substr(0, size));
        body.remove_prefix(std::min(body.size(), size + 2));
    }
    return out;
}

std::string url_encode(std::string_view text) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

asio::awaitable<HttpResult> http_request(asio::io_context& io, std::string method, std::string url, std::string body,
                                         std::string content_type, std::chrono::milliseconds timeout) {
    HttpResult result;
    auto parsed = parse_http_url(url);
    if (!parsed || parsed->tls) {
        result.error = "unsupported URL (http://host:port/path expected): " + url;
        co_return result;
    }
    auto socket = std::make_shared<tcp::socket>(io);
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer deadline(io);
    deadline.expires_after(timeout);
    deadline.async_wait([socket, timed_out](const boost::system::error_code& ec) {
        if (ec) return;
        *timed_out = true;
        boost::system::error_code ignored;
        socket->close(ignored);
    });
    tcp::resolver resolver(io);
    auto [rec, endpoints] = co_await resolver.async_resolve(parsed->host, parsed->port, nothrow_awaitable);
    boost::system::error_code failure = rec;
    if (!failure) {
        auto [cec, ep] = co_await asio::async_connect(*socket, endpoints, nothrow_awaitable);
        failure = cec;
    }
    if (!failure) {
        std::string request = request_message(method, *parsed, "application/json", body, content_type);
        auto [wec, wn] = co_await asio::async_write(*socket, asio::buffer(request), nothrow_awaitable);
        failure = wec;
    }
    std::string response;
    while (!failure) {
        char buffer[8192];
        auto [ec, n] = co_await socket->async_read_some(asio::buffer(buffer), nothrow_awaitable);
        response.append(buffer, n);
        if (ec == asio::error::eof) break;
        failure = ec;
        if (response.size() > 16 * 1024 * 1024) {
            result.error = "response too large";
            co_return result;
        }
    }
    deadline.cancel();
    if (failure) {
        result.error = *timed_out ? "timed out" : failure.message();
        co_return result;
    }
    auto parsed_response = parse_response(response, method == "HEAD");
    result.ok = parsed_response.ok;
    result.status = parsed_response.status;
    result.body = std::move(parsed_response.body);
    result.error = std::move(parsed_response.error);
    co_return result;
}

} // namespace releasectl
