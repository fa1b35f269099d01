#pragma once
// The admin API: HTTP/1.1 + JSON on a Unix socket (mode 0660), optionally also
// on TCP with a bearer token. Every CLI command is a client of it. Runs on the
// control thread; Beast stays inside admin_server.cpp.
#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>

namespace releasectl {

class Controller;

class AdminServer {
public:
    // Throws std::runtime_error (naming the path/address) if it cannot listen.
    AdminServer(boost::asio::io_context& io, Controller& controller, const std::string& socket_path,
                const std::string& tcp_listen, const std::string& token);
    ~AdminServer();
    void start();
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace releasectl
