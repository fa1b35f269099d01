#pragma once
// One connection of releasectl-demo-app: HTTP/1.1 keep-alive + pipelining,
// the demo routes, and WebSocket echo. Beast stays in the .cpp.
#include "controller/demo_app_options.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <atomic>
#include <cstdint>
#include <string>

namespace releasectl::demo {

namespace asio = boost::asio;

// Read-only after start, shared by every worker thread (plus one atomic).
struct SharedAppState {
    explicit SharedAppState(DemoAppOptions opts);

    DemoAppOptions options;
    std::string fixed_headers; // "Server: ...\r\nX-Release: ...\r\nX-Slot: ...\r\n"
    std::string hello_body;    // "hello from <release>\n"
    // Counts app requests when an error rate is set; shared so that "every 10th"
    // holds for the whole process, not per thread.
    mutable std::atomic<std::uint64_t> app_requests{0};

    // Deterministic error injection: the k-th app request fails when
    // floor(k * rate) steps up, so 0.1 fails exactly every 10th request.
    bool next_app_request_fails() const;
};

// The open connections of one worker thread. Touched only from that worker's
// io_context, so it needs no lock. SIGTERM closes idle connections through it
// and tells busy ones to close after their current response.
class ConnectionList {
public:
    struct Entry {
        Entry* prev = nullptr;
        Entry* next = nullptr;
        bool busy = false;
        void* socket = nullptr;
        void (*cancel)(void* socket) = nullptr;
    };

    bool shutting_down() const { return shutting_down_; }
    void begin_shutdown();
    std::size_t size() const { return size_; }

    // RAII membership of one connection.
    class Registration {
    public:
        Registration(ConnectionList& list, void* socket, void (*cancel)(void*));
        ~Registration();
        Registration(const Registration&) = delete;
        Registration& operator=(const Registration&) = delete;
        void set_busy(bool busy) { entry_.busy = busy; }

    private:
        ConnectionList& list_;
        Entry entry_;
    };

private:
    Entry* head_ = nullptr;
    std::size_t size_ = 0;
    bool shutting_down_ = false;
};

asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket, const SharedAppState& app,
                                       ConnectionList& connections);
asio::awaitable<void> serve_connection(asio::local::stream_protocol::socket socket,
                                       const SharedAppState& app, ConnectionList& connections);

} // namespace releasectl::demo
