#include "controller/https_client.hpp"

#include "controller/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>

#include <memory>
#include <optional>

namespace releasectl {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxResponseBytes = 4 * 1024 * 1024;

struct HttpsUrl {
    std::string host, port = "443", target = "/";
};

std::optional<HttpsUrl> parse_https_url(std::string_view url) {
    if (!url.starts_with("https://")) return std::nullopt;
    std::string rest(url.substr(8));
    HttpsUrl out;
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
    if (out.host.empty()) return std::nullopt;
    return out;
}

// The value of `name` (lower case, with the colon) in a lower-cased head copy.
std::string header_value(const std::string& head, const std::string& lower_head, std::string_view name) {
    auto at = lower_head.find(name);
    if (at == std::string::npos) return {};
    auto start = at + name.size();
    auto end = head.find("\r\n", start);
    std::string value = head.substr(start, end == std::string::npos ? std::string::npos : end - start);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    return value;
}

} // namespace

asio::awaitable<HttpsResponse> https_request(asio::io_context& io, HttpsRequest request) {
    HttpsResponse result;
    auto url = parse_https_url(request.url);
    if (!url) {
        result.error = "unsupported URL (https://host[:port]/path expected): " + request.url;
        co_return result;
    }
    asio::ssl::context tls(asio::ssl::context::tls_client);
    boost::system::error_code setup;
    tls.set_verify_mode(asio::ssl::verify_peer, setup);
    if (!request.ca_bundle.empty()) tls.load_verify_file(request.ca_bundle, setup);
    else tls.set_default_verify_paths(setup);
    if (setup) {
        result.error = "TLS trust store: " + setup.message() + (request.ca_bundle.empty() ? "" : " (" + request.ca_bundle + ")");
        co_return result;
    }
    auto stream = std::make_shared<asio::ssl::stream<tcp::socket>>(io, tls);
    stream->set_verify_callback(asio::ssl::host_name_verification(url->host));
    boost::system::error_code not_ip;
    asio::ip::make_address(url->host, not_ip);
    if (not_ip) SSL_set_tlsext_host_name(stream->native_handle(), url->host.c_str()); // SNI for names only

    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer deadline(io);
    deadline.expires_after(request.timeout);
    deadline.async_wait([stream, timed_out](const boost::system::error_code& ec) {
        if (ec) return;
        *timed_out = true;
        boost::system::error_code ignored;
        stream->lowest_layer().close(ignored);
    });
    tcp::resolver resolver(io);
    auto [rec, endpoints] = co_await resolver.async_resolve(url->host, url->port, nothrow_awaitable);
    boost::system::error_code failure = rec;
    if (!failure) {
        auto [cec, ep] = co_await asio::async_connect(stream->lowest_layer(), endpoints, nothrow_awaitable);
        failure = cec;
    }
    if (!failure) {
        auto [hec] = co_await stream->async_handshake(asio::ssl::stream_base::client, nothrow_awaitable);
        failure = hec;
    }
    if (!failure) {
        std::string head = request.method + " " + url->target + " HTTP/1.1\r\nHost: " + url->host +
                           (url->port == "443" ? "" : ":" + url->port) +
                           "\r\nUser-Agent: releasectl\r\nAccept: */*\r\nConnection: close\r\n";
        if (!request.body.empty() || request.method == "POST")
            head += "Content-Type: " + request.content_type + "\r\nContent-Length: " + std::to_string(request.body.size()) +
                    "\r\n";
        head += "\r\n" + request.body;
        auto [wec, wn] = co_await asio::async_write(*stream, asio::buffer(head), nothrow_awaitable);
        failure = wec;
    }
    std::string response;
    while (!failure) {
        char buffer[8192];
        auto [ec, n] = co_await stream->async_read_some(asio::buffer(buffer), nothrow_awaitable);
        response.append(buffer, n);
        // The server closing after "Connection: close" ends the response; a
        // missing close_notify is fine here because the length is checked below.
        if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) break;
        failure = ec;
        if (response.size() > kMaxResponseBytes) {
            result.error = "response too large";
            co_return result;
        }
    }
    deadline.cancel();
    if (failure) {
        result.error = *timed_out ? "timed out" : failure.message();
        co_return result;
    }
    auto head_end = response.find("\r\n\r\n");
    if (response.size() < 12 || !response.starts_with("HTTP/1.") || head_end == std::string::npos) {
        result.error = "malformed response";
        co_return result;
    }
    result.status = static_cast<unsigned>(std::atoi(response.c_str() + 9));
    const std::string head = response.substr(0, head_end + 2);
    std::string lower = head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    result.location = header_value(head, lower, "\r\nlocation:");
    result.replay_nonce = header_value(head, lower, "\r\nreplay-nonce:");
    result.body = response.substr(head_end + 4);
    if (header_value(lower, lower, "\r\ntransfer-encoding:") == "chunked") result.body = dechunk(result.body);
    else if (auto length = header_value(head, lower, "\r\ncontent-length:"); !length.empty() && request.method != "HEAD") {
        if (result.body.size() < static_cast<std::size_t>(std::atoll(length.c_str()))) {
            result.error = "response body cut short";
            co_return result;
        }
    }
    result.ok = true;
    co_return result;
}

} // namespace releasectl
