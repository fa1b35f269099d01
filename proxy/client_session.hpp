#pragma once
// One client connection of a worker (internal to proxy/). A template on the
// client stream so plain TCP and TLS share every line of the HTTP logic while
// the plain path pays nothing for TLS (no virtual I/O, no runtime flag);
// client_session.cpp instantiates it for tcp::socket and the TLS stream.
#include "http_head.hpp"
#include "worker.hpp"

#include <boost/asio/buffer.hpp>

#include <optional>
#include <span>
#include <string>
#include <type_traits>

namespace releasectl::proxy {

template <typename ClientStream>
class ClientSession final : public Watched {
public:
    ClientSession(Worker& worker, ClientStream stream);
    ~ClientSession() override;
    ClientSession(const ClientSession&) = delete;
    ClientSession& operator=(const ClientSession&) = delete;

    asio::awaitable<void> run();

    void on_client_deadline() override;
    void on_upstream_deadline() override;
    void on_drain() override;
    void on_force_close() override;

private:
    enum class Phase { idle, request, tunnel };
    // What went wrong with an upstream exchange (decides status and metrics).
    enum class Failure { none, connect, connect_timeout, tls, reset, timeout, bad_response, client_gone, request_invalid };

    static constexpr bool kTls = !std::is_same_v<ClientStream, tcp::socket>;

    asio::awaitable<bool> handshake();
    asio::awaitable<bool> handle_request(std::size_t head_bytes);
    asio::awaitable<bool> redirect_to_https(std::size_t head_bytes);
    asio::awaitable<bool> answer_locally(unsigned status, std::string_view reason, std::string_view fields,
                                         std::string_view body, std::size_t head_bytes);
    asio::awaitable<Failure> attempt(UpstreamPool& pool, bool fresh, bool retryable);
    asio::awaitable<Failure> upstream_handshake(UpstreamPool& pool);
    asio::awaitable<Failure> send_request_body();
    asio::awaitable<Failure> receive_response(bool retryable);
    asio::awaitable<Failure> receive_while_sending();
    asio::awaitable<void> tunnel();
    asio::awaitable<void> respond_error(unsigned status, std::string_view reason, bool close);
    asio::awaitable<void> linger_close();
    asio::awaitable<bool> read_client();
    asio::awaitable<bool> write_client(std::span<const asio::const_buffer> buffers);
    asio::awaitable<bool> write_client(std::string_view bytes);
    asio::awaitable<bool> write_upstream(std::span<const asio::const_buffer> buffers);

    int choose_slot(const RouteTable& table);
    void build_upstream_head();
    void build_response_head(bool close_after, bool chunk_to_client);
    void append_security_headers(std::string& out, const std::vector<HeaderField>* app_fields) const;
    void finish_request();
    void count_upstream_error(UpstreamErrorKind kind);
    void close_client();
    asio::awaitable<void> close_client_gracefully();
    void close_upstream();
    void arm_client(Duration timeout) { client_deadline = worker_.now() + timeout; }
    void arm_upstream(Duration timeout) { upstream_deadline = worker_.now() + timeout; }
    static unsigned failure_status(Failure failure);
    static std::string_view failure_reason(Failure failure);

    // Settings for the request in progress; between requests a SIGHUP's new
    // ones are picked up (keep-alive connections see them too).
    const ProxySettings& current_settings() const { return snapshot_->settings; }
    void refresh_settings() {
        const auto& current = worker_.settings_snapshot();
        if (current != snapshot_) snapshot_ = current;
    }

    Worker& worker_;
    std::shared_ptr<const SettingsSnapshot> snapshot_;
    ClientStream client_;
    ByteBuffer in_;
    std::unique_ptr<UpstreamConnection> upstream_;
    RequestHead head_;
    ResponseHead response_;
    std::string head_copy_;      // request head bytes while in_ is reused for the body
    std::string upstream_head_;  // request head as sent upstream
    std::string out_;            // response head as sent to the client
    std::string request_frame_;  // re-chunked request body piece
    std::string response_frame_; // re-chunked response body piece
    std::string coalesced_;      // TLS: small multi-buffer writes joined into one record
    std::string upstream_coalesced_; // the same for an https:// upstream (written concurrently)
    std::string client_ip_;
    std::string request_id_;
    std::string slot_name_;
    std::string release_;
    std::string sticky_cookie_name_;
    Phase phase_ = Phase::idle;

    // per request
    Clock::time_point started_at_{};
    std::optional<std::uint32_t> new_bucket_;
    int slot_ = -1;
    unsigned status_ = 0;
    unsigned request_error_status_ = 0;
    const char* request_error_reason_ = "";
    std::size_t pending_request_bytes_ = 0; // fast path: request still in in_
    std::uint64_t bytes_in_ = 0, bytes_out_ = 0, upstream_micros_ = 0;
    bool response_started_ = false;
    bool body_consumed_ = false;
    bool retry_allowed_ = false;
    bool upstream_keep_ = false;
    bool keep_client_ = false;
    bool client_timed_out_ = false;
    bool upstream_timed_out_ = false;
    bool continue_sent_ = false;
    bool client_aborted_ = false; // client vanished mid-body: its fault, not the app's
};

} // namespace releasectl::proxy
