#include "controller/metrics_server.hpp"

#include "proxy/settings.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <cctype>
#include <chrono>
#include <optional>
#include <set>
#include <stdexcept>
#include <vector>

namespace releasectl {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

// Small on purpose: scrapers and probes send a few hundred bytes.
constexpr std::uint32_t kMaxHeaderBytes = 8 * 1024;
constexpr std::uint64_t kMaxBodyBytes = 4 * 1024;
constexpr std::size_t kMaxConnections = 64;
// Long enough for a keep-alive scraper at a 60 s interval; a request that takes
// longer than this to arrive is not one we want.
constexpr auto kReadTimeout = std::chrono::seconds(75);
constexpr auto kWriteTimeout = std::chrono::seconds(30);

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

bool equal_constant_time(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

bool bearer_matches(std::string_view authorization, std::string_view token) {
    constexpr std::string_view scheme = "bearer ";
    if (authorization.size() < scheme.size()) return false;
    for (std::size_t i = 0; i < scheme.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return false;
    auto presented = authorization.substr(scheme.size());
    while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
    return equal_constant_time(presented, token);
}

Response make_response(http::status status, unsigned version, bool keep_alive, std::string content_type,
                       std::string body) {
    Response response{status, version};
    response.set(http::field::server, "releasectl");
    response.set(http::field::content_type, content_type);
    response.set(http::field::cache_control, "no-store");
    response.body() = std::move(body);
    response.keep_alive(keep_alive);
    response.prepare_payload();
    return response;
}

// The status and reason for a request we could not even parse.
std::optional<http::status> status_for_parse_error(const boost::system::error_code& ec) {
    if (ec == http::error::header_limit) return http::status::request_header_fields_too_large;
    if (ec == http::error::body_limit) return http::status::payload_too_large;
    if (ec.category() == beast::http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message)
        return http::status::bad_request;
    return std::nullopt; // timeout, reset, clean close: nothing to answer
}

} // namespace

struct MetricsServer::Impl {
    asio::io_context& io;
    tcp::acceptor acceptor;
    std::string token;
    std::function<std::string()> render;
    std::function<ReadinessReport()> ready;
    std::set<beast::tcp_stream*> open_streams; // control thread only
    std::size_t connections = 0;
    bool started = false;
    bool stopped = false;

    Impl(asio::io_context& io_, std::string token_, std::function<std::string()> render_,
         std::function<ReadinessReport()> ready_)
        : io(io_), acceptor(io_), token(std::move(token_)), render(std::move(render_)), ready(std::move(ready_)) {}

    Response answer(const Request& request) {
        const unsigned version = request.version();
        const bool keep = request.keep_alive() && !stopped;
        const bool head = request.method() == http::verb::head;
        if (request.method() != http::verb::get && !head) {
            auto r = make_response(http::status::method_not_allowed, version, keep, "text/plain; charset=utf-8",
                                   "method not allowed\n");
            r.set(http::field::allow, "GET, HEAD");
            return r;
        }
        std::string_view path = request.target();
        if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);

        Response response;
        if (path == "/metrics") {
            if (!token.empty() && !bearer_matches(request[http::field::authorization], token)) {
                response = make_response(http::status::unauthorized, version, keep, "text/plain; charset=utf-8",
                                         "missing or wrong bearer token\n");
                response.set(http::field::www_authenticate, "Bearer realm=\"releasectl metrics\"");
            } else {
                try {
                    response = make_response(http::status::ok, version, keep, kMetricsContentType, render());
                } catch (const std::exception& e) {
                    spdlog::error("/metrics: cannot render: {}", e.what());
                    response = make_response(http::status::internal_server_error, version, keep,
                                             "text/plain; charset=utf-8", "cannot render metrics\n");
                }
            }
        } else if (path == "/health/live") {
            response = make_response(http::status::ok, version, keep, "application/json", "{\"status\":\"live\"}\n");
        } else if (path == "/health/ready") {
            ReadinessReport report;
            try {
                report = ready();
            } catch (const std::exception& e) {
                report.checks.push_back({"readiness", false, e.what()});
            }
            response = make_response(report.ready() ? http::status::ok : http::status::service_unavailable, version,
                                     keep, "application/json", render_readiness(report));
        } else {
            response = make_response(http::status::not_found, version, keep, "text/plain; charset=utf-8",
                                     "not found\n");
        }
        if (head) response.body().clear(); // Content-Length stays that of the GET
        return response;
    }

    static asio::awaitable<void> serve_connection(std::shared_ptr<Impl> impl, tcp::socket socket);
    static asio::awaitable<void> accept_loop(std::shared_ptr<Impl> impl);
};

asio::awaitable<void> MetricsServer::Impl::serve_connection(std::shared_ptr<Impl> impl, tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    impl->open_streams.insert(&stream);
    struct Forget {
        Impl& impl;
        beast::tcp_stream* stream;
        ~Forget() {
            impl.open_streams.erase(stream);
            --impl.connections;
        }
    } forget{*impl, &stream};

    beast::flat_buffer buffer(kMaxHeaderBytes + kMaxBodyBytes);
    while (!impl->stopped) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(kMaxHeaderBytes);
        parser.body_limit(kMaxBodyBytes);
        stream.expires_after(kReadTimeout);
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, nothrow_awaitable);
        if (ec) {
            if (auto status = status_for_parse_error(ec); status && !impl->stopped) {
                auto response = make_response(*status, 11, false, "text/plain; charset=utf-8",
                                              std::string(http::obsolete_reason(*status)) + "\n");
                stream.expires_after(std::chrono::seconds(5));
                co_await http::async_write(stream, response, nothrow_awaitable);
            }
            break;
        }
        Response response = impl->answer(parser.get());
        stream.expires_after(kWriteTimeout);
        auto [write_ec, written] = co_await http::async_write(stream, response, nothrow_awaitable);
        if (write_ec || !response.keep_alive()) break;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.socket().close(ignored);
}

asio::awaitable<void> MetricsServer::Impl::accept_loop(std::shared_ptr<Impl> impl) {
    for (;;) {
        auto [ec, socket] = co_await impl->acceptor.async_accept(nothrow_awaitable);
        if (impl->stopped || !impl->acceptor.is_open()) co_return;
        if (ec) {
            // Out of descriptors and the like: back off instead of spinning.
            asio::steady_timer pause(impl->io, std::chrono::milliseconds(100));
            co_await pause.async_wait(nothrow_awaitable);
            continue;
        }
        if (impl->connections >= kMaxConnections) {
            boost::system::error_code ignored;
            socket.close(ignored);
            continue;
        }
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        ++impl->connections;
        asio::co_spawn(impl->io, serve_connection(impl, std::move(socket)), asio::detached);
    }
}

MetricsServer::MetricsServer(asio::io_context& io, const std::string& listen, std::string token,
                             std::function<std::string()> render, std::function<ReadinessReport()> ready)
    : impl_(std::make_shared<Impl>(io, std::move(token), std::move(render), std::move(ready))) {
    std::string error;
    auto address = proxy::ListenAddress::parse(listen, &error);
    if (!address) throw std::runtime_error("metrics listen address '" + listen + "': " + error);
    std::string host = address->host;
    if (host.empty()) host = "0.0.0.0";
    if (host == "localhost") host = "127.0.0.1";
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(host, ec);
    if (ec) throw std::runtime_error("metrics listen address '" + listen + "': '" + host + "' is not an IP address");
    tcp::endpoint endpoint(ip, address->port);
    auto& acceptor = impl_->acceptor;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen for metrics on " + listen + ": " + ec.message());
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start() {
    if (impl_->started || impl_->stopped) return;
    impl_->started = true;
    asio::co_spawn(impl_->io, Impl::accept_loop(impl_), asio::detached);
}

void MetricsServer::stop() {
    if (!impl_ || impl_->stopped) return;
    impl_->stopped = true;
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
    // Copy: closing completes the pending operations later, which then erase
    // their own entries.
    std::vector<beast::tcp_stream*> streams(impl_->open_streams.begin(), impl_->open_streams.end());
    for (auto* stream : streams) stream->close();
}

std::uint16_t MetricsServer::port() const {
    boost::system::error_code ec;
    auto endpoint = impl_->acceptor.local_endpoint(ec);
    return ec ? 0 : endpoint.port();
}

} // namespace releasectl
