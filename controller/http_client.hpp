#pragma once
// A minimal async HTTP/1.1 client for the control thread (webhooks, Prometheus
// queries): http:// URLs only, one request per connection, whole-call timeout.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <string>

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

} // namespace releasectl
