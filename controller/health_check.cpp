#include "controller/health_check.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/http/parser.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>

namespace releasectl {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

using Deadline = std::chrono::steady_clock::time_point;

std::string describe(const boost::system::error_code& ec, std::string_view step, proxy::Duration timeout) {
    if (ec == beast::error::timeout)
        return fmt::format("{}: timed out after {}", step, proxy::format_duration(timeout));
    return fmt::format("{}: {}", step, ec.message());
}

// Request and response head on an already connected stream.
template <class Stream>
asio::awaitable<HealthProbeResult> exchange(Stream& stream, const std::string& host, const std::string& path,
                                            Deadline deadline, proxy::Duration timeout) {
    HealthProbeResult result;
    boost::system::error_code ec;
    http::request<http::empty_body> request{http::verb::get, path.empty() ? "/" : path, 11};
    request.set(http::field::host, host);
    request.set(http::field::user_agent, "releasectl-health-check");
    request.set(http::field::connection, "close");
    beast::get_lowest_layer(stream).expires_at(deadline);
    co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        result.error = describe(ec, "send", timeout);
        co_return result;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    parser.header_limit(16 * 1024);
    beast::get_lowest_layer(stream).expires_at(deadline);
    co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        result.error = describe(ec, "read response", timeout);
        co_return result;
    }
    result.status = static_cast<int>(parser.get().result_int());
    result.healthy = result.status >= 200 && result.status < 300;
    if (!result.healthy)
        result.error = fmt::format("status {}", result.status);
    co_return result;
}

asio::awaitable<HealthProbeResult> probe_tcp(const proxy::UpstreamAddress& upstream,
                                             const proxy::UpstreamTlsClient* tls, const std::string& path,
                                             Deadline deadline, proxy::Duration timeout) {
    auto executor = co_await asio::this_coro::executor;
    boost::system::error_code ec;
    asio::ip::tcp::resolver resolver(executor);
    auto endpoints = co_await resolver.async_resolve(upstream.host, std::to_string(upstream.port),
                                                     asio::ip::tcp::resolver::numeric_service,
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
        co_return HealthProbeResult{false, 0, describe(ec, "resolve " + upstream.host, timeout)};
    beast::basic_stream<asio::ip::tcp> stream(executor);
    stream.expires_at(deadline);
    co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
        co_return HealthProbeResult{false, 0, describe(ec, "connect " + upstream.to_string(), timeout)};
    const std::string host = upstream.host.find(':') != std::string::npos
                                 ? fmt::format("[{}]:{}", upstream.host, upstream.port)
                                 : fmt::format("{}:{}", upstream.host, upstream.port);
    if (upstream.tls) {
        // The same context, name check and SNI as the proxy's own connections.
        SSL* ssl = tls ? tls->new_connection(nullptr) : nullptr;
        if (!ssl) co_return HealthProbeResult{false, 0, "TLS: no client context for " + upstream.to_string()};
        asio::ssl::stream<beast::basic_stream<asio::ip::tcp>&> secure(stream, ssl);
        stream.expires_at(deadline);
        co_await secure.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            std::string why = proxy::UpstreamTlsClient::verify_error(secure.native_handle());
            co_return HealthProbeResult{false, 0, why.empty() ? describe(ec, "TLS handshake", timeout) : "TLS handshake: " + why};
        }
        co_return co_await exchange(secure, host, path, deadline, timeout);
    }
    auto result = co_await exchange(stream, host, path, deadline, timeout);
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    co_return result;
}

asio::awaitable<HealthProbeResult> probe_unix(const proxy::UpstreamAddress& upstream, const std::string& path,
                                              Deadline deadline, proxy::Duration timeout) {
    auto executor = co_await asio::this_coro::executor;
    boost::system::error_code ec;
    beast::basic_stream<asio::local::stream_protocol> stream(executor);
    stream.expires_at(deadline);
    co_await stream.async_connect(asio::local::stream_protocol::endpoint(upstream.path),
                                  asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
        co_return HealthProbeResult{false, 0, describe(ec, "connect unix:" + upstream.path, timeout)};
    auto result = co_await exchange(stream, std::string("localhost"), path, deadline, timeout);
    stream.socket().shutdown(asio::local::stream_protocol::socket::shutdown_both, ec);
    co_return result;
}

} // namespace

asio::awaitable<HealthProbeResult> probe_health(const proxy::UpstreamAddress& upstream,
                                                std::shared_ptr<const proxy::UpstreamTlsClient> tls, std::string path,
                                                proxy::Duration timeout) {
    const Deadline deadline = std::chrono::steady_clock::now() + timeout;
    if (upstream.kind == proxy::UpstreamAddress::Kind::unix_socket)
        co_return co_await probe_unix(upstream, path, deadline, timeout);
    co_return co_await probe_tcp(upstream, tls.get(), path, deadline, timeout);
}

} // namespace releasectl
