#pragma once
// A minimal async HTTP/1.1 client for the control thread (webhooks, Prometheus
// queries): http:// URLs only, one request per connection, whole-call timeout.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace releasectl {

struct HttpResult {
    bool ok = false;       // a complete response arrived (any status)
    unsigned status = 0;
    std::string body;
    std::string error;     // why not ok: "timed out", "connection refused", ...
};

boost::asio::awaitable<HttpResult> http_request(boost::asio::io_context& io, std::string method, std::string url,
                                                std::string body, std::string content_type,
                                                std::chrono::milliseconds timeout);

std::string url_encode(std::string_view text);
// A chunked message body, decoded (small bodies; stops at the first bad size).
std::string dechunk(std::string_view body);

// Pieces shared with the HTTPS client (https_client.cpp).
struct HttpUrl {
    bool tls = false;           // https://
    std::string host;           // without brackets
    std::string port;           // "80" / "443" unless given
    std::string target = "/";
};
// http://host[:port][/path] or https://...; nullopt when malformed.
std::optional<HttpUrl> parse_http_url(std::string_view url);
// The request head (Connection: close) followed by the body.
std::string request_message(const std::string& method, const HttpUrl& url, std::string_view accept,
                            const std::string& body, const std::string& content_type);
struct ParsedResponse {
    bool ok = false;
    unsigned status = 0;
    std::string body;     // dechunked
    std::string error;    // why not ok
    std::string head;     // status line and fields, each line ending in CRLF
    // A field's value (name case-insensitive, e.g. "location"), trimmed; "" if absent.
    std::string field(std::string_view name) const;
};
// A whole response read until the server closed. A body shorter than its
// Content-Length is an error (not for HEAD).
ParsedResponse parse_response(const std::string& response, bool head_request);

} // namespace releasectl
