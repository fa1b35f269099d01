#include "controller/admin_server.hpp"

#include "controller/controller.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <sys/stat.h>

namespace releasectl {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

namespace {
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

template <class Socket>
asio::awaitable<void> serve_connection(Socket socket, Controller& controller, std::string token) {
    beast::basic_stream<typename Socket::protocol_type> stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(1024 * 1024);
        stream.expires_after(std::chrono::seconds(30));
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, nothrow_awaitable);
        if (ec) co_return;
        auto& request = parser.get();
        AdminReply reply;
        if (!token.empty() && request[http::field::authorization] != "Bearer " + token) {
            boost::json::object o;
            o["ok"] = false;
            o["error"] = "missing or wrong bearer token";
            reply = {401, o};
        } else {
            reply = co_await controller.handle(std::string(request.method_string()), std::string(request.target()),
                                               request.body());
        }
        http::response<http::string_body> response{static_cast<http::status>(reply.status), request.version()};
        response.set(http::field::content_type, "application/json");
        response.set(http::field::server, "releasectl");
        response.body() = boost::json::serialize(reply.body) + "\n";
        response.keep_alive(request.keep_alive());
        response.prepare_payload();
        stream.expires_after(std::chrono::seconds(30));
        auto [wec, wn] = co_await http::async_write(stream, response, nothrow_awaitable);
        if (wec || !response.keep_alive()) co_return;
    }
}

template <class Acceptor>
asio::awaitable<void> accept_loop(Acceptor& acceptor, Controller& controller, std::string token) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(nothrow_awaitable);
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
            continue;
        }
        asio::co_spawn(acceptor.get_executor(), serve_connection(std::move(socket), controller, token), asio::detached);
    }
}

} // namespace

struct AdminServer::Impl {
    asio::io_context& io;
    Controller& controller;
    std::string socket_path;
    std::string token;
    unix_socket::acceptor unix_acceptor;
    std::optional<tcp::acceptor> tcp_acceptor;

    Impl(asio::io_context& io_, Controller& c, std::string path, std::string t)
        : io(io_), controller(c), socket_path(std::move(path)), token(std::move(t)), unix_acceptor(io_) {}
};

AdminServer::AdminServer(asio::io_context& io, Controller& controller, const std::string& socket_path,
                         const std::string& tcp_listen, const std::string& token)
    : impl_(std::make_unique<Impl>(io, controller, socket_path, token)) {
    namespace fs = std::filesystem;
    std::error_code fs_ec;
    fs::create_directories(fs::path(socket_path).parent_path(), fs_ec);
    // A stale socket from a crashed daemon is replaced; a live one means another
    // daemon owns this root.
    if (fs::exists(socket_path, fs_ec)) {
        unix_socket::socket probe(io);
        boost::system::error_code ec;
        probe.connect(unix_socket::endpoint(socket_path), ec);
        if (!ec) throw std::runtime_error("another releasectl daemon is already listening on " + socket_path);
        fs::remove(socket_path, fs_ec);
    }
    boost::system::error_code ec;
    impl_->unix_acceptor.open(unix_socket(), ec);
    if (!ec) impl_->unix_acceptor.bind(unix_socket::endpoint(socket_path), ec);
    if (!ec) impl_->unix_acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on admin socket " + socket_path + ": " + ec.message());
    ::chmod(socket_path.c_str(), 0660);
    if (!tcp_listen.empty()) {
        auto colon = tcp_listen.rfind(':');
        auto address = asio::ip::make_address(tcp_listen.substr(0, colon), ec);
        if (ec || colon == std::string::npos) throw std::runtime_error("admin listen address '" + tcp_listen + "' is not host:port");
        tcp::endpoint endpoint(address, static_cast<unsigned short>(std::stoi(tcp_listen.substr(colon + 1))));
        impl_->tcp_acceptor.emplace(io);
        impl_->tcp_acceptor->open(endpoint.protocol(), ec);
        if (!ec) impl_->tcp_acceptor->set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) impl_->tcp_acceptor->bind(endpoint, ec);
        if (!ec) impl_->tcp_acceptor->listen(asio::socket_base::max_listen_connections, ec);
        if (ec) throw std::runtime_error("cannot listen on admin address " + tcp_listen + ": " + ec.message());
    }
}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
    asio::co_spawn(impl_->io, accept_loop(impl_->unix_acceptor, impl_->controller, std::string{}), asio::detached);
    if (impl_->tcp_acceptor)
        asio::co_spawn(impl_->io, accept_loop(*impl_->tcp_acceptor, impl_->controller, impl_->token), asio::detached);
}

void AdminServer::stop() {
    if (!impl_) return;
    boost::system::error_code ignored;
    if (impl_->unix_acceptor.is_open()) {
        impl_->unix_acceptor.close(ignored);
        std::error_code fs_ec;
        std::filesystem::remove(impl_->socket_path, fs_ec);
    }
    if (impl_->tcp_acceptor && impl_->tcp_acceptor->is_open()) impl_->tcp_acceptor->close(ignored);
}

} // namespace releasectl
