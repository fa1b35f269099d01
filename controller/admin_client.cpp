#include "controller/admin_client.hpp"

#include <boost/json/parse.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace releasectl {
namespace {

struct Fd {
    int fd = -1;
    ~Fd() { if (fd >= 0) ::close(fd); }
};

int connect_unix(const std::string& path, std::string* error) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path) {
        *error = "socket path too long: " + path;
        ::close(fd);
        return -1;
    }
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        *error = "cannot reach the daemon at " + path + ": " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

int connect_tcp(const std::string& host_port, std::string* error) {
    auto colon = host_port.rfind(':');
    std::string host = host_port.substr(0, colon), port = host_port.substr(colon + 1);
    addrinfo hints{}, *result = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &result) != 0 || !result) {
        *error = "cannot resolve " + host_port;
        return -1;
    }
    int fd = ::socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = ::connect(fd, result->ai_addr, result->ai_addrlen);
    ::freeaddrinfo(result);
    if (rc != 0) {
        *error = "cannot reach the daemon at " + host_port + ": " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

} // namespace

AdminResponse AdminClient::call(const std::string& method, const std::string& path, const std::string& body) const {
    AdminResponse out;
    Fd socket;
    socket.fd = address_.starts_with("tcp:") ? connect_tcp(address_.substr(4), &out.error)
                                             : connect_unix(address_, &out.error);
    if (socket.fd < 0) return out;
    std::string request = method + " " + path + " HTTP/1.1\r\nHost: releasectl\r\nConnection: close\r\n";
    if (!token_.empty()) request += "Authorization: Bearer " + token_ + "\r\n";
    request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    std::size_t sent = 0;
    while (sent < request.size()) {
        ssize_t n = ::send(socket.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            out.error = std::string("sending to the daemon failed: ") + std::strerror(errno);
            return out;
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string response;
    char buffer[16384];
    for (;;) {
        pollfd p{socket.fd, POLLIN, 0};
        if (::poll(&p, 1, 60'000) <= 0) {
            out.error = "the daemon did not answer within 60s";
            return out;
        }
        ssize_t n = ::recv(socket.fd, buffer, sizeof buffer, 0);
        if (n < 0) {
            out.error = std::string("reading from the daemon failed: ") + std::strerror(errno);
            return out;
        }
        if (n == 0) break;
        response.append(buffer, static_cast<std::size_t>(n));
    }
    auto head_end = response.find("\r\n\r\n");
    if (response.size() < 12 || head_end == std::string::npos) {
        out.error = "the daemon sent an incomplete answer";
        return out;
    }
    out.reached = true;
    out.status = static_cast<unsigned>(std::atoi(response.c_str() + 9));
    boost::system::error_code ec;
    out.body = boost::json::parse(response.substr(head_end + 4), ec);
    if (ec) out.body = nullptr;
    return out;
}

} // namespace releasectl
