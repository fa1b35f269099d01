// One client connection: read a head, choose a slot, relay the request and the
// response (streaming; both directions at once when a body is involved), loop
// for keep-alive / pipelining, or become a byte tunnel after a 101. The same
// code serves plain TCP and TLS clients (instantiated for both at the end).
#include "client_session.hpp"

#include "status_text.hpp"
#include "tls_context.hpp"
#include "upstream_tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <cstdio>

namespace releasectl::proxy {
namespace {

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);
using namespace asio::experimental::awaitable_operators;
using TlsStream = asio::ssl::stream<tcp::socket>;

// The TCP socket under a client or upstream stream (close, shutdown, options).
tcp::socket& socket_of(tcp::socket& socket) { return socket; }
tcp::socket& socket_of(TlsStream& stream) { return stream.next_layer(); }
UpstreamSocket& socket_of(UpstreamSocket& socket) { return socket; }
UpstreamSocket& socket_of(UpstreamTlsStream& stream) { return stream.next_layer(); }

// Upstream I/O over plain TCP or TLS. Both branches are the same awaitable
// type and neither starts until awaited, so the choice costs one test.
auto upstream_read_some(UpstreamConnection& up) {
    auto buffer = asio::buffer(up.in.write_ptr(), up.in.writable());
    return up.tls ? up.tls->async_read_some(buffer, nothrow_awaitable)
                  : up.socket.async_read_some(buffer, nothrow_awaitable);
}
template <typename Buffers>
auto upstream_write(UpstreamConnection& up, const Buffers& buffers) {
    return up.tls ? asio::async_write(*up.tls, buffers, nothrow_awaitable)
                  : asio::async_write(up.socket, buffers, nothrow_awaitable);
}

// Asio's TLS stream encrypts one buffer per write: a head and a small body
// would leave as two records and two syscalls. Below this size they are
// copied into one buffer first.
constexpr std::size_t kTlsCoalesceLimit = 16 * 1024;

// RFC 8555 HTTP-01 challenges must stay reachable over plain HTTP.
constexpr std::string_view kAcmeChallengePrefix = "/.well-known/acme-challenge/";
bool is_acme_challenge(std::string_view target) { return target.starts_with(kAcmeChallengePrefix); }

// "example.com:8080" -> "example.com", "[::1]:8080" -> "[::1]".
std::string_view host_without_port(std::string_view host) {
    if (!host.empty() && host.front() == '[') {
        auto close = host.find(']');
        return close == std::string_view::npos ? host : host.substr(0, close + 1);
    }
    auto colon = host.rfind(':');
    return colon == std::string_view::npos ? host : host.substr(0, colon);
}

bool is_idempotent(std::string_view method) {
    return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
           method == "DELETE" || method == "TRACE";
}

bool valid_request_id(std::string_view id) {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '.' || c == ':' || c == '+' || c == '/' || c == '=';
        if (!ok) return false;
    }
    return true;
}

void append_decimal(std::string& out, std::uint64_t value) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    out.append(digits, end);
}

void append_chunk(std::string& out, std::string_view data) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, data.size(), 16);
    out.append(digits, end);
    out.append("\r\n", 2);
    out.append(data);
    out.append("\r\n", 2);
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ", 2);
    out.append(value);
    out.append("\r\n", 2);
}

std::string_view field_value(const std::vector<HeaderField>& fields, std::string_view name) {
    for (const auto& f : fields)
        if (iequals(f.name, name)) return f.value;
    return {};
}

// Hop-by-hop per RFC 9110 §7.6.1: the fixed set plus whatever any Connection line names.
bool is_hop(const std::vector<HeaderField>& fields, std::string_view name) {
    if (is_hop_by_hop(name, {})) return true;
    for (const auto& f : fields)
        if (iequals(f.name, "Connection") && is_hop_by_hop(name, f.value)) return true;
    return false;
}

void set_nodelay(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

} // namespace

template <typename Stream>
ClientSession<Stream>::ClientSession(Worker& worker, Stream stream)
    : worker_(worker), snapshot_(worker.settings_snapshot()), client_(std::move(stream)), in_(16 * 1024) {
    bump(worker_.shard().connections_active);
    bump(worker_.shard().connections_total);
    boost::system::error_code ec;
    auto remote = socket_of(client_).remote_endpoint(ec);
    if (!ec) {
        auto address = remote.address();
        if (address.is_v6() && address.to_v6().is_v4_mapped())
            address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
        client_ip_ = address.to_string();
    }
    set_nodelay(socket_of(client_).native_handle());
    worker_.watch(*this);
}

template <typename Stream>
ClientSession<Stream>::~ClientSession() { drop(worker_.shard().connections_active); }

template <typename Stream>
void ClientSession<Stream>::close_client() {
    boost::system::error_code ignored;
    socket_of(client_).close(ignored);
}

// The end of a connection we decided to close: plain TCP sends FIN; TLS first
// sends close_notify and waits (briefly) for the client's.
template <typename Stream>
asio::awaitable<void> ClientSession<Stream>::close_client_gracefully() {
    auto& socket = socket_of(client_);
    if (!socket.is_open()) co_return;
    boost::system::error_code ignored;
    if constexpr (kTls) {
        arm_client(std::chrono::milliseconds(1000));
        co_await client_.async_shutdown(nothrow_awaitable);
    } else {
        socket.shutdown(tcp::socket::shutdown_send, ignored);
    }
    socket.close(ignored);
}

template <typename Stream>
void ClientSession<Stream>::close_upstream() {
    if (!upstream_) return;
    boost::system::error_code ignored;
    upstream_->socket.close(ignored);
}

template <typename Stream>
void ClientSession<Stream>::on_client_deadline() {
    client_timed_out_ = true;
    close_client();
    if (phase_ == Phase::tunnel) close_upstream();
}

template <typename Stream>
void ClientSession<Stream>::on_upstream_deadline() {
    if (!upstream_) return;
    upstream_timed_out_ = true;
    close_upstream();
}

template <typename Stream>
void ClientSession<Stream>::on_drain() {
    if ((phase_ == Phase::idle && in_.empty()) || phase_ == Phase::tunnel) {
        close_client();
        close_upstream();
    }
}

template <typename Stream>
void ClientSession<Stream>::on_force_close() {
    close_client();
    close_upstream();
}

template <typename Stream>
void ClientSession<Stream>::count_upstream_error(UpstreamErrorKind kind) {
    if (slot_ < 0) return;
    bump(worker_.shard().slots[static_cast<std::size_t>(slot_)].upstream_errors[static_cast<std::size_t>(kind)]);
}

template <typename Stream>
unsigned ClientSession<Stream>::failure_status(Failure failure) {
    switch (failure) {
    case Failure::connect_timeout:
    case Failure::timeout: return 504;
    default: return 502;
    }
}

template <typename Stream>
std::string_view ClientSession<Stream>::failure_reason(Failure failure) {
    switch (failure) {
    case Failure::connect: return "upstream refused the connection";
    case Failure::connect_timeout: return "upstream connect timed out";
    case Failure::timeout: return "upstream did not respond in time";
    case Failure::bad_response: return "upstream sent an invalid response";
    case Failure::tls: return "TLS handshake with the upstream failed";
    default: return "upstream closed the connection";
    }
}

// ------------------------------------------------------------------ I/O

template <typename Stream>
asio::awaitable<bool> ClientSession<Stream>::read_client() {
    if (!in_.prepare(in_.capacity()) || !socket_of(client_).is_open()) co_return false;
    auto [ec, n] = co_await client_.async_read_some(asio::buffer(in_.write_ptr(), in_.writable()), nothrow_awaitable);
    if (ec) co_return false;
    in_.commit(n);
    bytes_in_ += n;
    co_return true;
}

template <typename Stream>
asio::awaitable<bool> ClientSession<Stream>::write_client(std::span<const asio::const_buffer> buffers) {
    if (!socket_of(client_).is_open()) co_return false;
    arm_client(current_settings().timeouts.client_write);
    if constexpr (kTls) {
        std::size_t total = 0;
        for (const auto& buffer : buffers) total += buffer.size();
        if (buffers.size() > 1 && total <= kTlsCoalesceLimit) {
            coalesced_.clear();
            for (const auto& buffer : buffers) coalesced_.append(static_cast<const char*>(buffer.data()), buffer.size());
            auto [ec, n] = co_await asio::async_write(client_, asio::buffer(coalesced_), nothrow_awaitable);
            bytes_out_ += n;
            if (!ec) response_started_ = true;
            co_return !ec;
        }
    }
    auto [ec, n] = co_await asio::async_write(client_, buffers, nothrow_awaitable);
    bytes_out_ += n;
    if (!ec) response_started_ = true;
    co_return !ec;
}

template <typename Stream>
asio::awaitable<bool> ClientSession<Stream>::write_client(std::string_view bytes) {
    std::array<asio::const_buffer, 1> one{asio::buffer(bytes.data(), bytes.size())};
    co_return co_await write_client(one);
}

template <typename Stream>
asio::awaitable<bool> ClientSession<Stream>::write_upstream(std::span<const asio::const_buffer> buffers) {
    if (!upstream_ || !upstream_->socket.is_open()) co_return false;
    arm_upstream(current_settings().timeouts.upstream_read);
    if (upstream_->tls && buffers.size() > 1) {
        // As for TLS clients: one record (and one syscall) for head + small body.
        std::size_t total = 0;
        for (const auto& buffer : buffers) total += buffer.size();
        if (total <= kTlsCoalesceLimit) {
            upstream_coalesced_.clear();
            for (const auto& buffer : buffers)
                upstream_coalesced_.append(static_cast<const char*>(buffer.data()), buffer.size());
            auto [ec, n] = co_await upstream_write(*upstream_, asio::buffer(upstream_coalesced_));
            co_return !ec;
        }
    }
    auto [ec, n] = co_await upstream_write(*upstream_, buffers);
    co_return !ec;
}

// ------------------------------------------------------------------ main loop

template <typename Stream>
asio::awaitable<void> ClientSession<Stream>::run() {
    if constexpr (kTls) {
        if (!(co_await handshake())) co_return;
    }
    bool first = true;
    while (socket_of(client_).is_open()) {
        phase_ = Phase::idle;
        refresh_settings();
        // This request's settings, until it ends (re-read when its first byte
        // arrives: a SIGHUP during the keep-alive wait applies to it).
        const ProxySettings* settings = &current_settings();
        if (worker_.draining() && in_.empty()) break;
        // A fresh connection gets the head deadline; a kept-alive one the idle
        // deadline until its next request starts, then the head deadline.
        arm_client(first || !in_.empty() ? settings->timeouts.request_head : settings->timeouts.keepalive_idle);
        upstream_deadline = Clock::time_point::max();
        bool head_started = !in_.empty();
        ParseResult parsed;
        for (;;) {
            if (!in_.empty()) {
                parsed = parse_request_head(in_.view(), settings->limits, head_);
                if (parsed.status != ParseStatus::incomplete) break;
            }
            if (!in_.prepare(settings->limits.max_header_bytes + 1024)) {
                parsed = {ParseStatus::error, 0, 431, "request head too large"};
                break;
            }
            bytes_in_ = 0;
            if (!(co_await read_client())) co_return; // idle close, slowloris, or client gone
            if (!head_started) {
                head_started = true;
                phase_ = Phase::request;
                refresh_settings();
                settings = &current_settings();
                arm_client(settings->timeouts.request_head);
            }
        }
        first = false;
        phase_ = Phase::request;
        started_at_ = Clock::now();
        if (parsed.status == ParseStatus::error) {
            bump(worker_.shard().requests_rejected);
            slot_ = -1;
            status_ = 0;
            response_started_ = false;
            request_id_.clear();
            co_await respond_error(parsed.error_status, parsed.reason, /*close=*/true);
            co_await linger_close();
            co_return;
        }
        if (!(co_await handle_request(parsed.head_bytes))) break;
    }
    co_await close_client_gracefully();
}

// The TLS handshake under its own deadline (a client that connects and says
// nothing is a slowloris before the first byte of HTTP).
template <typename Stream>
asio::awaitable<bool> ClientSession<Stream>::handshake() {
    if constexpr (kTls) {
        arm_client(current_settings().timeouts.tls_handshake);
        auto [ec] = co_await client_.async_handshake(asio::ssl::stream_base::server, nothrow_awaitable);
        auto& counters = worker_.shard().tls_handshakes;
        if (ec) {
            // The client's business: counted, but no log line per scanner.
            bump(counters[static_cast<std::size_t>(client_timed_out_ ? TlsHandshakeResult::timed_out
                                                                      : TlsHandshakeResult::failed)]);
            close_client();
            co_return false;
        }
        bump(counters[static_cast<std::size_t>(SSL_session_reused(client_.native_handle()) ? TlsHandshakeResult::resumed
                                                                                          : TlsHandshakeResult::full)]);
    }
    co_return true;
}

// Reads and discards what the client still sends for a moment after we decided
// to close, so the kernel does not answer with RST and destroy our response.
// TLS has no half-close, so there the client learns of the end from our
// "Connection: close" and closes itself; we only discard until then.
template <typename Stream>
asio::awaitable<void> ClientSession<Stream>::linger_close() {
    auto& socket = socket_of(client_);
    if (!socket.is_open()) co_return;
    boost::system::error_code ignored;
    if constexpr (!kTls) socket.shutdown(tcp::socket::shutdown_send, ignored);
    arm_client(std::chrono::milliseconds(1000));
    std::size_t discarded = 0;
    while (socket.is_open() && discarded < 1024 * 1024) {
        in_.clear();
        auto [ec, n] = co_await client_.async_read_some(asio::buffer(in_.write_ptr(), in_.writable()), nothrow_awaitable);
        if (ec) break;
        discarded += n;
    }
    socket.close(ignored);
}

template <typename Stream>
asio::awaitable<void> ClientSession<Stream>::respond_error(unsigned status, std::string_view reason, bool close) {
    status_ = status;
    if (response_started_ || !socket_of(client_).is_open()) co_return;
    std::string_view text = status_text(status);
    std::string body;
    body.reserve(96);
    body.append(std::to_string(status)).append(" ").append(text);
    if (!reason.empty()) body.append(": ").append(reason);
    body.push_back('\n');
    out_.clear();
    out_.append("HTTP/1.1 ");
    append_decimal(out_, status);
    out_.push_back(' ');
    out_.append(text);
    out_.append("\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: ");
    append_decimal(out_, body.size());
    out_.append("\r\n");
    if (!request_id_.empty()) append_field(out_, "X-Request-ID", request_id_);
    append_security_headers(out_, nullptr);
    if (close) out_.append("Connection: close\r\n");
    out_.append("\r\n");
    bool head_only = head_.method == "HEAD";
    std::array<asio::const_buffer, 2> buffers{asio::buffer(out_), asio::buffer(body.data(), head_only ? 0 : body.size())};
    co_await write_client(buffers);
}

// -------------------------------------------------------------- routing

template <typename Stream>
int ClientSession<Stream>::choose_slot(const RouteTable& table) {
    // 1. tester override: header, then cookie
    if (!table.override_header.empty()) {
        auto pinned = field_value(head_.fields, table.override_header);
        if (!pinned.empty()) {
            int index = table.slot_index(pinned);
            if (index >= 0) return index;
        }
    }
    auto cookies = field_value(head_.fields, "Cookie");
    if (!cookies.empty() && !table.override_cookie.empty()) {
        auto pinned = cookie_value(cookies, table.override_cookie);
        if (!pinned.empty()) {
            int index = table.slot_index(pinned);
            if (index >= 0) return index;
        }
    }
    // 2. stickiness: a stable random bucket per visitor
    if (table.sticky) {
        auto bucket = cookies.empty() ? std::nullopt : bucket_from_cookie_header(cookies, table.sticky_cookie);
        if (!bucket) {
            new_bucket_ = static_cast<std::uint32_t>(worker_.random64() % kStickyBuckets);
            bucket = new_bucket_;
        }
        return slot_for_bucket(table, *bucket);
    }
    // 3. smooth weighted round robin
    return worker_.round_robin().pick(table);
}

// ---------------------------------------------------------- one request

template <typename Stream>
asio::awaitable<bool> ClientSession<Stream>::handle_request(std::size_t head_bytes) {
    status_ = 0;
    request_error_status_ = 0;
    response_started_ = false;
    retry_allowed_ = false;
    upstream_keep_ = false;
    keep_client_ = false;
    upstream_timed_out_ = false;
    client_timed_out_ = false;
    continue_sent_ = false;
    client_aborted_ = false;
    new_bucket_.reset();
    // The head is in: no client I/O is pending until the body (which arms its
    // own deadline) or the response (writes arm client_write).
    client_deadline = Clock::time_point::max();
    bytes_in_ = head_bytes;
    bytes_out_ = 0;
    upstream_micros_ = 0;
    pending_request_bytes_ = 0;

    auto id = field_value(head_.fields, "X-Request-ID");
    if (valid_request_id(id)) {
        request_id_.assign(id);
    } else {
        // 32 lowercase hex digits from two random words (no printf on the request path).
        static constexpr char kHex[] = "0123456789abcdef";
        char hex[32];
        for (std::size_t word = 0; word < 2; ++word) {
            std::uint64_t bits = worker_.random64();
            for (std::size_t i = 0; i < 16; ++i, bits >>= 4) hex[word * 16 + 15 - i] = kHex[bits & 15];
        }
        request_id_.assign(hex, 32);
    }
    if constexpr (!kTls) {
        if (is_acme_challenge(head_.target)) {
            // Copied out before any await: the published set may be replaced meanwhile.
            const std::string* answer = worker_.acme_answer(head_.target.substr(kAcmeChallengePrefix.size()));
            if (answer) {
                std::string body = *answer;
                co_return co_await answer_locally(200, "OK", "Content-Type: text/plain\r\nCache-Control: no-store\r\n",
                                                  body, head_bytes);
            }
        } else if (current_settings().redirect_http) {
            co_return co_await redirect_to_https(head_bytes);
        }
    }

    const RouteTable& table = worker_.route_table();
    slot_ = choose_slot(table);
    if (slot_ < 0 || static_cast<std::size_t>(slot_) >= table.slots.size()) {
        slot_ = -1;
        bool close = head_.body != BodyKind::none || !head_.keep_alive;
        co_await respond_error(503, "no release slot is live", close);
        finish_request();
        if (close) {
            co_await linger_close();
            co_return false;
        }
        in_.consume(head_bytes);
        co_return true;
    }
    const SlotRoute& route = table.slots[static_cast<std::size_t>(slot_)];
    slot_name_ = route.name;
    release_ = route.release;
    sticky_cookie_name_ = table.sticky_cookie;
    UpstreamPool& pool = worker_.pool_for(table, slot_, current_settings());
    auto& counters = worker_.shard().slots[static_cast<std::size_t>(slot_)];
    bump(counters.in_flight);

    bool body_in_buffer = head_.body == BodyKind::none ||
                          (head_.body == BodyKind::content_length && in_.size() - head_bytes >= head_.content_length);
    // Only idempotent requests are replayed: a POST without a body that died on
    // a reused connection may still have been acted on by the app.
    bool retryable = body_in_buffer && is_idempotent(head_.method);
    if (body_in_buffer) {
        // Fast path: the whole request is in in_, which stays untouched (and so
        // do head_'s views into it) until the response is done.
        pending_request_bytes_ = head_bytes + (head_.body == BodyKind::content_length ? head_.content_length : 0);
        bytes_in_ = pending_request_bytes_;
        body_consumed_ = true;
    } else {
        // The body streams through in_, so the head moves to its own storage.
        head_copy_.assign(in_.view().substr(0, head_bytes));
        auto reparsed = parse_request_head(head_copy_, current_settings().limits, head_);
        (void)reparsed; // same bytes, same verdict
        in_.consume(head_bytes);
        body_consumed_ = false;
    }
    build_upstream_head();

    Failure failure = co_await attempt(pool, /*fresh=*/false, retryable);
    if (failure != Failure::none && retry_allowed_) {
        // The reused connection was dead before it produced a byte: once more, fresh.
        failure = co_await attempt(pool, /*fresh=*/true, /*retryable=*/false);
    }
    in_.consume(pending_request_bytes_);
    pending_request_bytes_ = 0;

    switch (failure) {
    case Failure::none:
        break;
    case Failure::client_gone:
        if (status_ == 0 || !response_started_) status_ = 499;
        keep_client_ = false;
        break;
    case Failure::request_invalid:
        keep_client_ = false;
        break;
    default: {
        UpstreamErrorKind kind = UpstreamErrorKind::reset;
        if (failure == Failure::connect) kind = UpstreamErrorKind::connect;
        else if (failure == Failure::connect_timeout || failure == Failure::timeout) kind = UpstreamErrorKind::timeout;
        else if (failure == Failure::bad_response) kind = UpstreamErrorKind::bad_response;
        else if (failure == Failure::tls) kind = UpstreamErrorKind::tls;
        count_upstream_error(kind);
        if (!response_started_) {
            bool close = !body_consumed_ || !head_.keep_alive;
            co_await respond_error(failure_status(failure), failure_reason(failure), close);
            keep_client_ = !close;
        } else {
            keep_client_ = false;
        }
        break;
    }
    }
    upstream_.reset();
    drop(counters.in_flight);
    finish_request();
    if (!keep_client_) {
        if (!body_consumed_) co_await linger_close();
        co_return false;
    }
    co_return !worker_.draining();
}

// redirect_http: 308 (method and body are kept by the client) to the same
// host without its plain port, on the first HTTPS listener's port.
template <typename Stream>
asio::awaitable<bool> ClientSession<Stream>::redirect_to_https(std::size_t head_bytes) {
    const std::string_view host = host_without_port(head_.host);
    if (host.empty()) {
        slot_ = -1;
        bump(worker_.shard().requests_rejected);
        co_await respond_error(400, "a Host header is needed to redirect to https", /*close=*/true);
        finish_request();
        co_await linger_close();
        co_return false;
    }
    const auto& listen_tls = current_settings().listen_tls;
    const std::uint16_t port = listen_tls.empty() ? 443 : listen_tls.front().port;
    std::string location = "Location: https://";
    location.append(host);
    if (port != 443) {
        location.push_back(':');
        append_decimal(location, port);
    }
    location.append(head_.target == "*" ? std::string_view("/") : head_.target);
    location.append("\r\n");
    co_return co_await answer_locally(308, "Permanent Redirect", location, {}, head_bytes);
}

// A response the proxy makes itself (redirect, ACME answer). A request body is
// not for us: skipped when it is all here already, otherwise the connection
// closes after the answer (never read as the next request).
template <typename Stream>
asio::awaitable<bool> ClientSession<Stream>::answer_locally(unsigned status, std::string_view reason,
                                                            std::string_view fields, std::string_view body,
                                                            std::size_t head_bytes) {
    slot_ = -1;
    const bool body_in_buffer = head_.body == BodyKind::none || (head_.body == BodyKind::content_length &&
                                                                 in_.size() - head_bytes >= head_.content_length);
    const bool close = !body_in_buffer || !head_.keep_alive || worker_.draining();
    out_.clear();
    out_.append("HTTP/1.1 ");
    append_decimal(out_, status);
    out_.push_back(' ');
    out_.append(reason);
    out_.append("\r\n");
    out_.append(fields);
    out_.append("Content-Length: ");
    append_decimal(out_, body.size());
    out_.append("\r\n");
    append_security_headers(out_, nullptr);
    if (close) out_.append("Connection: close\r\n");
    else if (head_.version_minor == 0) out_.append("Connection: keep-alive\r\n");
    out_.append("\r\n");
    if (head_.method != "HEAD") out_.append(body);
    status_ = status;
    const bool written = co_await write_client(out_);
    finish_request();
    if (!written) co_return false;
    if (close) {
        co_await linger_close();
        co_return false;
    }
    in_.consume(head_bytes + (head_.body == BodyKind::content_length ? head_.content_length : 0));
    co_return true;
}

template <typename Stream>
void ClientSession<Stream>::finish_request() {
    auto micros = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_at_).count());
    if (slot_ >= 0) {
        auto& counters = worker_.shard().slots[static_cast<std::size_t>(slot_)];
        counters.record(status_, micros);
        bump(counters.bytes_in, bytes_in_);
        bump(counters.bytes_out, bytes_out_);
    }
    const auto& sink = worker_.access_sink();
    if (sink) {
        AccessRecord record;
        record.unix_micros = std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::system_clock::now().time_since_epoch()).count();
        record.client = client_ip_;
        record.method = head_.method;
        record.host = head_.host;
        record.path = head_.target;
        record.slot = slot_ >= 0 ? std::string_view(slot_name_) : std::string_view("-");
        record.release = slot_ >= 0 ? std::string_view(release_) : std::string_view("-");
        record.request_id = request_id_;
        record.user_agent = field_value(head_.fields, "User-Agent");
        record.status = status_;
        record.bytes_in = bytes_in_;
        record.bytes_out = bytes_out_;
        record.duration_micros = micros;
        record.upstream_micros = upstream_micros_;
        sink(record);
    }
    slot_ = -1;
}

template <typename Stream>
void ClientSession<Stream>::build_upstream_head() {
    std::string& out = upstream_head_;
    out.clear();
    out.append(head_.method);
    out.push_back(' ');
    out.append(head_.target);
    out.append(" HTTP/1.1\r\n");
    append_field(out, "Host", head_.host);
    for (const auto& f : head_.fields) {
        if (is_hop(head_.fields, f.name)) continue;
        if (iequals(f.name, "Host") || iequals(f.name, "X-Request-ID") || iequals(f.name, "X-Forwarded-For") ||
            iequals(f.name, "X-Forwarded-Proto") || iequals(f.name, "X-Forwarded-Host") || iequals(f.name, "Expect"))
            continue;
        append_field(out, f.name, f.value);
    }
    out.append("X-Forwarded-For: ");
    if (snapshot_->trusted.contains(client_ip_)) {
        // Extend the chain only when the hop that sent it is one we trust;
        // from anyone else it is replaced (it could be forged).
        for (const auto& f : head_.fields) {
            if (!iequals(f.name, "X-Forwarded-For") || f.value.empty()) continue;
            out.append(f.value);
            out.append(", ");
        }
    }
    out.append(client_ip_.empty() ? std::string_view("unknown") : std::string_view(client_ip_));
    out.append("\r\n");
    append_field(out, "X-Forwarded-Proto", kTls ? "https" : "http");
    append_field(out, "X-Forwarded-Host", head_.host);
    append_field(out, "X-Request-ID", request_id_);
    if (head_.upgrade) {
        append_field(out, "Connection", "upgrade");
        append_field(out, "Upgrade", field_value(head_.fields, "Upgrade"));
    }
    switch (head_.body) {
    case BodyKind::content_length:
        out.append("Content-Length: ");
        append_decimal(out, head_.content_length);
        out.append("\r\n");
        break;
    case BodyKind::chunked:
        out.append("Transfer-Encoding: chunked\r\n");
        break;
    default:
        // A request that said Content-Length: 0 keeps saying it (some apps want it on POST).
        if (!field_value(head_.fields, "Content-Length").empty()) out.append("Content-Length: 0\r\n");
        break;
    }
    out.append("\r\n");
}

// TLS on a freshly connected upstream socket, within the connect deadline.
// Resumes the pool's last session when it can; a failure is logged with the
// verification error (rate-limited: a misconfigured CA would fail them all).
template <typename Stream>
asio::awaitable<typename ClientSession<Stream>::Failure> ClientSession<Stream>::upstream_handshake(UpstreamPool& pool) {
    SSL* ssl = pool.tls()->new_connection(pool.resumable_session());
    if (ssl == nullptr) {
        upstream_.reset();
        co_return Failure::tls;
    }
    upstream_->tls = std::make_unique<UpstreamTlsStream>(upstream_->socket, ssl);
    auto [ec] = co_await upstream_->tls->async_handshake(asio::ssl::stream_base::client, nothrow_awaitable);
    if (ec) {
        bool timed_out = upstream_timed_out_;
        if (!timed_out && pool.should_log_tls_failure(worker_.now())) {
            std::string why = UpstreamTlsClient::verify_error(upstream_->tls->native_handle());
            if (why.empty()) why = ec.message();
            spdlog::warn("slot {}: TLS handshake with upstream {} failed: {}{}", slot_name_, pool.address().to_string(),
                         why, pool.tls()->verifies() ? " (expected name " + pool.tls()->verified_name() + ")" : "");
        }
        upstream_.reset();
        co_return timed_out ? Failure::connect_timeout : Failure::tls;
    }
    upstream_->new_tls_session = SSL_session_reused(upstream_->tls->native_handle()) == 0;
    co_return Failure::none;
}

// One attempt: connection, request, response. Sets retry_allowed_ when the
// failure happened on a reused connection before any response byte, for a
// request that is safe to send again.
template <typename Stream>
asio::awaitable<typename ClientSession<Stream>::Failure> ClientSession<Stream>::attempt(UpstreamPool& pool, bool fresh, bool retryable) {
    const auto& settings = current_settings();
    retry_allowed_ = false;
    upstream_keep_ = false;
    upstream_timed_out_ = false;
    if (!pool.resolved()) co_return Failure::connect;
    upstream_ = fresh ? nullptr : pool.take(worker_.now());
    bool reused = upstream_ != nullptr;
    if (!upstream_) {
        upstream_ = std::make_unique<UpstreamConnection>(worker_.io());
        arm_upstream(settings.timeouts.upstream_connect);
        auto [ec] = co_await upstream_->socket.async_connect(pool.endpoint(), nothrow_awaitable);
        if (ec) {
            bool timed_out = upstream_timed_out_;
            upstream_.reset();
            co_return timed_out ? Failure::connect_timeout : Failure::connect;
        }
        if (pool.is_tcp()) set_nodelay(upstream_->socket.native_handle());
        if (pool.tls()) {
            Failure failure = co_await upstream_handshake(pool);
            if (failure != Failure::none) co_return failure;
        }
    }
    auto upstream_started = Clock::now();

    // Expect: 100-continue is answered by us once an upstream is ready; the
    // header is not forwarded, so the app never sends an interim 100 itself.
    if (head_.expect_continue && head_.version_minor == 1 && head_.body != BodyKind::none && in_.empty() &&
        !continue_sent_) {
        continue_sent_ = true;
        if (!(co_await write_client(std::string_view("HTTP/1.1 100 Continue\r\n\r\n")))) co_return Failure::client_gone;
        response_started_ = false; // an interim response does not start the final one
    }

    Failure failure = Failure::none;
    if (pending_request_bytes_ > 0 || head_.body == BodyKind::none) {
        std::size_t head_bytes = pending_request_bytes_ - (head_.body == BodyKind::content_length ? head_.content_length : 0);
        std::size_t body_bytes = pending_request_bytes_ - head_bytes;
        std::array<asio::const_buffer, 2> buffers{
            asio::buffer(upstream_head_), asio::buffer(in_.view().data() + head_bytes, body_bytes)};
        if (!(co_await write_upstream(buffers))) {
            retry_allowed_ = reused && retryable;
            failure = upstream_timed_out_ ? Failure::timeout : Failure::reset;
        } else {
            failure = co_await receive_response(reused && retryable);
        }
    } else {
        // Stream the body up while the response streams down: an app may
        // answer before reading everything, or echo while it reads.
        auto [sent, received] = co_await (send_request_body() && receive_while_sending());
        failure = received;
        if (request_error_status_ != 0) failure = Failure::request_invalid;
        else if (client_aborted_) failure = Failure::client_gone; // not the app's fault
        else if (sent == Failure::client_gone && failure == Failure::none) failure = Failure::client_gone;
    }
    upstream_micros_ = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - upstream_started).count());
    upstream_deadline = Clock::time_point::max();
    if (failure == Failure::none && upstream_keep_ && upstream_) pool.give_back(std::move(upstream_), worker_.now());
    upstream_.reset();
    co_return failure;
}

// Streams the request body from the client to the upstream, re-framed.
template <typename Stream>
asio::awaitable<typename ClientSession<Stream>::Failure> ClientSession<Stream>::send_request_body() {
    const auto& settings = current_settings();
    const auto body_deadline = worker_.now() + settings.timeouts.request_body;
    bool head_sent = false;
    std::uint64_t remaining = head_.content_length;
    std::uint64_t total = 0;
    ChunkedDecoder decoder;
    auto refuse = [this](unsigned status, const char* reason) {
        // The upstream must never see the rest of a broken body: drop it. The
        // receiving side writes the error response (one writer per socket).
        request_error_status_ = status;
        request_error_reason_ = reason;
        bump(worker_.shard().requests_rejected);
        close_upstream();
        return Failure::request_invalid;
    };
    for (;;) {
        std::array<asio::const_buffer, 2> buffers;
        std::size_t count = 0;
        if (!head_sent) buffers[count++] = asio::buffer(upstream_head_);
        bool done = false;
        std::size_t consume = 0;
        if (head_.body == BodyKind::content_length) {
            auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, in_.size()));
            if (take) buffers[count++] = asio::buffer(in_.view().data(), take);
            consume = take;
            remaining -= take;
            done = remaining == 0;
        } else {
            request_frame_.clear();
            std::string_view input = in_.view();
            for (;;) {
                auto step = decoder.next(input.substr(consume));
                if (step.error) co_return refuse(400, "malformed chunked body");
                consume += step.consumed;
                if (!step.data.empty()) {
                    total += step.data.size();
                    if (total > settings.limits.max_body_bytes) co_return refuse(413, "request body too large");
                    append_chunk(request_frame_, step.data);
                }
                if (step.done) {
                    request_frame_.append("0\r\n\r\n");
                    done = true;
                    break;
                }
                if (step.consumed == 0) break;
            }
            if (!request_frame_.empty()) buffers[count++] = asio::buffer(request_frame_);
        }
        if (count > 0) {
            if (!(co_await write_upstream(std::span(buffers.data(), count)))) {
                in_.consume(consume);
                co_return Failure::reset;
            }
            head_sent = true;
        }
        in_.consume(consume);
        if (done) {
            body_consumed_ = true;
            arm_upstream(settings.timeouts.upstream_response);
            co_return Failure::none;
        }
        if (worker_.now() >= body_deadline) co_return refuse(408, "request body took too long");
        client_deadline = body_deadline;
        if (!(co_await read_client())) {
            if (client_timed_out_ && response_started_ == false) co_return refuse(408, "request body took too long");
            client_aborted_ = true;
            close_upstream(); // a half body must not look complete upstream
            co_return Failure::client_gone;
        }
    }
}

// The receiving half while a body streams up: when it ends before the body
// did (early answer, failure), it reports the error itself and then makes sure
// the sending half stops waiting for the client.
template <typename Stream>
asio::awaitable<typename ClientSession<Stream>::Failure> ClientSession<Stream>::receive_while_sending() {
    Failure failure = co_await receive_response(false);
    if (request_error_status_ != 0) {
        co_await respond_error(request_error_status_, request_error_reason_, true);
    } else if (failure != Failure::none && failure != Failure::client_gone && !client_aborted_ && !body_consumed_ &&
               !response_started_) {
        co_await respond_error(failure_status(failure), failure_reason(failure), true);
    }
    if (!body_consumed_) {
        keep_client_ = false;
        upstream_keep_ = false;
        arm_client(std::chrono::milliseconds(1000)); // lingering close of the unread body
    }
    co_return failure;
}

// Reads the response head (skipping interim 1xx) and streams the response.
template <typename Stream>
asio::awaitable<typename ClientSession<Stream>::Failure> ClientSession<Stream>::receive_response(bool retryable) {
    const auto& settings = current_settings();
    upstream_keep_ = false;
    keep_client_ = false;
    if (!upstream_) co_return Failure::reset;
    UpstreamConnection& up = *upstream_;
    ParseResult parsed;
    bool any_response_byte = false;
    for (;;) {
        // The response timeout runs from the end of the request: a slow
        // client body is the client's deadline, not the app's.
        if (body_consumed_) arm_upstream(settings.timeouts.upstream_response);
        else upstream_deadline = Clock::time_point::max();
        for (;;) {
            if (!up.in.empty()) {
                parsed = parse_response_head(up.in.view(), settings.limits.max_response_header_bytes, head_.method, response_);
                if (parsed.status != ParseStatus::incomplete) break;
            }
            if (!up.in.prepare(settings.limits.max_response_header_bytes + 1024)) {
                parsed = {ParseStatus::error, 0, 502, "response head too large"};
                break;
            }
            if (!up.socket.is_open()) co_return upstream_timed_out_ ? Failure::timeout : Failure::reset;
            auto [ec, n] = co_await upstream_read_some(up);
            if (ec) {
                if (upstream_timed_out_) co_return Failure::timeout;
                // Nothing came back at all: safe to retry if the request may be repeated.
                retry_allowed_ = retryable && !any_response_byte && up.in.empty();
                co_return Failure::reset;
            }
            any_response_byte = true;
            up.in.commit(n);
        }
        if (parsed.status == ParseStatus::error) co_return Failure::bad_response;
        if (response_.status == 101) {
            if (!head_.upgrade) co_return Failure::bad_response;
            break;
        }
        if (response_.status >= 200) break;
        up.in.consume(parsed.head_bytes); // interim 1xx: never the final response
    }
    status_ = response_.status;
    up.in.consume(parsed.head_bytes);

    const bool client_http10 = head_.version_minor == 0;
    const bool no_body = response_.body == BodyKind::none;
    const bool length_known = response_.body == BodyKind::content_length || no_body;
    const bool close_after = !head_.keep_alive || worker_.draining() || (client_http10 && !length_known) ||
                             !body_consumed_;
    const bool chunk_to_client = !client_http10 && !length_known;
    build_response_head(close_after, chunk_to_client);

    if (response_.status == 101) {
        in_.consume(pending_request_bytes_);
        pending_request_bytes_ = 0;
        if (!(co_await write_client(out_))) co_return Failure::client_gone;
        co_await tunnel();
        co_return Failure::none;
    }
    if (no_body) {
        if (!(co_await write_client(out_))) co_return Failure::client_gone;
        upstream_keep_ = response_.keep_alive && up.in.empty();
        keep_client_ = !close_after;
        co_return Failure::none;
    }

    bool head_written = false;
    bool upstream_eof = false;
    std::uint64_t remaining = response_.content_length;
    // A body larger than the buffer: relay it in 64 KiB reads rather than 16 KiB
    // (a quarter of the syscalls for big downloads).
    constexpr std::size_t kLargeBodyBuffer = 64 * 1024;
    if (response_.body == BodyKind::content_length && remaining > up.in.capacity()) up.in.reserve(kLargeBodyBuffer);
    ChunkedDecoder decoder;
    for (;;) {
        std::array<asio::const_buffer, 2> buffers;
        std::size_t count = 0;
        if (!head_written) buffers[count++] = asio::buffer(out_);
        bool done = false;
        std::size_t consume = 0;
        if (response_.body == BodyKind::content_length) {
            auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, up.in.size()));
            if (take) buffers[count++] = asio::buffer(up.in.view().data(), take);
            consume = take;
            remaining -= take;
            done = remaining == 0;
        } else if (response_.body == BodyKind::chunked) {
            response_frame_.clear();
            std::string_view input = up.in.view();
            for (;;) {
                auto step = decoder.next(input.substr(consume));
                if (step.error) {
                    if (!head_written) co_return Failure::bad_response; // nothing sent yet: a clean 502
                    // Already streaming: cut the client off so it sees a truncated message.
                    count_upstream_error(UpstreamErrorKind::bad_response);
                    close_client();
                    co_return Failure::client_gone;
                }
                consume += step.consumed;
                if (!step.data.empty()) {
                    if (chunk_to_client) append_chunk(response_frame_, step.data);
                    else response_frame_.append(step.data);
                }
                if (step.done) {
                    if (chunk_to_client) response_frame_.append("0\r\n\r\n");
                    done = true;
                    break;
                }
                if (step.consumed == 0) break;
            }
            if (!response_frame_.empty()) buffers[count++] = asio::buffer(response_frame_);
        } else { // until_close
            response_frame_.clear();
            std::string_view input = up.in.view();
            if (!input.empty()) {
                if (chunk_to_client) append_chunk(response_frame_, input);
                else response_frame_.append(input);
                consume = input.size();
            }
            if (upstream_eof) {
                if (chunk_to_client) response_frame_.append("0\r\n\r\n");
                done = true;
            }
            if (!response_frame_.empty()) buffers[count++] = asio::buffer(response_frame_);
        }
        if (count > 0) {
            if (!(co_await write_client(std::span(buffers.data(), count)))) co_return Failure::client_gone;
            head_written = true;
        }
        up.in.consume(consume);
        if (done) break;
        arm_upstream(settings.timeouts.upstream_read);
        if (!up.in.prepare(up.in.capacity()) || !up.socket.is_open()) {
            close_client();
            co_return Failure::client_gone;
        }
        auto [ec, n] = co_await upstream_read_some(up);
        if (ec) {
            if (response_.body == BodyKind::until_close && ec == asio::error::eof) {
                upstream_eof = true;
                continue;
            }
            // Mid-body failure: the client already has a head; truncate it.
            count_upstream_error(upstream_timed_out_ ? UpstreamErrorKind::timeout : UpstreamErrorKind::reset);
            close_client();
            co_return Failure::client_gone;
        }
        up.in.commit(n);
    }
    upstream_keep_ = response_.keep_alive && up.in.empty() && response_.body != BodyKind::until_close;
    keep_client_ = !close_after;
    co_return Failure::none;
}

template <typename Stream>
void ClientSession<Stream>::build_response_head(bool close_after, bool chunk_to_client) {
    std::string& out = out_;
    out.clear();
    out.append("HTTP/1.1 ");
    append_decimal(out, response_.status);
    out.push_back(' ');
    out.append(response_.reason.empty() ? status_text(response_.status) : response_.reason);
    out.append("\r\n");
    for (const auto& f : response_.fields) {
        if (is_hop(response_.fields, f.name)) continue;
        append_field(out, f.name, f.value);
    }
    if (new_bucket_) {
        out.append("Set-Cookie: ");
        out.append(sticky_cookie_name_);
        out.push_back('=');
        append_decimal(out, *new_bucket_);
        out.append("; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax\r\n");
    }
    const unsigned status = response_.status;
    if (status == 101) {
        append_field(out, "Connection", "upgrade");
        append_field(out, "Upgrade", field_value(response_.fields, "Upgrade"));
        out.append("\r\n");
        return;
    }
    append_security_headers(out, &response_.fields);
    if (status == 204 || status == 304 || status < 200) {
        // never a body, never framing headers
    } else if (head_.method == "HEAD") {
        auto length = field_value(response_.fields, "Content-Length");
        if (!length.empty()) append_field(out, "Content-Length", length);
    } else if (response_.body == BodyKind::content_length) {
        out.append("Content-Length: ");
        append_decimal(out, response_.content_length);
        out.append("\r\n");
    } else if (chunk_to_client) {
        out.append("Transfer-Encoding: chunked\r\n");
    } else if (response_.body == BodyKind::none) {
        out.append("Content-Length: 0\r\n");
    }
    if (close_after) out.append("Connection: close\r\n");
    else if (head_.version_minor == 0) out.append("Connection: keep-alive\r\n");
    out.append("\r\n");
}

// The configured security headers the app did not set itself (names compared
// case-insensitively, so never a duplicate); HSTS only over TLS.
template <typename Stream>
void ClientSession<Stream>::append_security_headers(std::string& out, const std::vector<HeaderField>* app_fields) const {
    for (const auto& header : current_settings().security_headers) {
        if constexpr (!kTls) {
            if (header.https_only) continue;
        }
        bool app_sent_it = false;
        if (app_fields) {
            for (const auto& field : *app_fields) {
                if (field.name.size() == header.name.size() && iequals(field.name, header.name)) {
                    app_sent_it = true;
                    break;
                }
            }
        }
        if (!app_sent_it) append_field(out, header.name, header.value);
    }
}

// After a 101: bytes both ways until either side closes or the tunnel idles out.
template <typename Stream>
asio::awaitable<void> ClientSession<Stream>::tunnel() {
    phase_ = Phase::tunnel;
    const auto idle = current_settings().timeouts.tunnel_idle;
    arm_client(idle);
    upstream_deadline = Clock::time_point::max();
    UpstreamConnection& up = *upstream_;
    // Bytes that arrived early on either side go first.
    if (!up.in.empty()) {
        auto [ec, n] = co_await asio::async_write(client_, asio::buffer(up.in.view().data(), up.in.size()), nothrow_awaitable);
        if (ec) co_return;
        bytes_out_ += n;
        up.in.clear();
    }
    if (!in_.empty()) {
        auto [ec, n] = co_await upstream_write(up, asio::buffer(in_.view().data(), in_.size()));
        if (ec) co_return;
        in_.clear();
    }
    auto pump = [this, idle](auto& from, auto& to, ByteBuffer& buffer, std::uint64_t& counter) -> asio::awaitable<void> {
        for (;;) {
            buffer.clear();
            auto [ec, n] = co_await from.async_read_some(asio::buffer(buffer.write_ptr(), buffer.writable()), nothrow_awaitable);
            if (ec) break;
            arm_client(idle);
            auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buffer.write_ptr(), n), nothrow_awaitable);
            if (wec) break;
            counter += wn;
        }
        // TCP half-close, also under TLS (a finished tunnel needs no close_notify).
        boost::system::error_code ignored;
        socket_of(to).shutdown(asio::socket_base::shutdown_send, ignored);
    };
    if (up.tls) co_await (pump(client_, *up.tls, in_, bytes_in_) && pump(*up.tls, client_, up.in, bytes_out_));
    else co_await (pump(client_, up.socket, in_, bytes_in_) && pump(up.socket, client_, up.in, bytes_out_));
    close_upstream();
    close_client();
    phase_ = Phase::request;
}

template class ClientSession<tcp::socket>;
template class ClientSession<TlsStream>;

asio::awaitable<void> serve_client(Worker& worker, tcp::socket socket) {
    ClientSession<tcp::socket> session(worker, std::move(socket));
    co_await session.run();
}

asio::awaitable<void> serve_tls_client(Worker& worker, tcp::socket socket, std::shared_ptr<const TlsContextSet> contexts) {
    // The stream owns the SSL object; `contexts` (this frame) outlives both.
    SSL* ssl = SSL_new(contexts->default_context());
    if (ssl == nullptr) co_return; // out of memory: the socket closes with this frame
    // The OCSP staple is found through the set; failing only means no staple.
    (void)contexts->attach(ssl);
    ClientSession<TlsStream> session(worker, TlsStream(std::move(socket), ssl));
    co_await session.run();
}

} // namespace releasectl::proxy
