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

} // namespace

asio::awaitable<HttpsResponse> https_request(asio::io_context& io, HttpsRequest request) {
    HttpsResponse result;
    auto url = parse_http_url(request.url);
    if (!url || !url->tls) {
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
        std::string head = request_message(request.method, *url, "*/*", request.body, request.content_type);
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
    auto parsed = parse_response(response, request.method == "HEAD");
    result.ok = parsed.ok;
    result.status = parsed.status;
    result.error = std::move(parsed.error);
    result.location = parsed.field("location");
    result.replay_nonce = parsed.field("replay-nonce");
    result.body = std::move(parsed.body);
    co_return result;
}

} // namespace releasectl
