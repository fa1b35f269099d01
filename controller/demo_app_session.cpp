// The demo backend's request handling. Written for speed because the benchmark
// puts it behind every proxy: response heads are formatted into a reused
// string, bodies come from one static pattern buffer, request bodies stream
// through a per-connection scratch buffer (never the whole body in memory).
#include "controller/demo_app_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_cat.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <array>
#include <charconv>
#include <ctime>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace releasectl::demo {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using error_code = boost::system::error_code;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t max_request_head_bytes = 64 * 1024;
constexpr std::size_t scratch_bytes = 64 * 1024;
constexpr std::size_t chunked_route_chunk_bytes = 16 * 1024;
constexpr std::size_t max_websocket_message_bytes = 64 * 1024 * 1024;

// Generated bodies are 'a'..'z' repeating: byte i of any body is 'a' + i % 26,
// so tests can verify content. One static buffer serves every response.
constexpr std::size_t pattern_period = 26;
constexpr std::size_t pattern_span = 2520 * pattern_period; // 65520 bytes per slice

const char* pattern_bytes() {
    static const std::vector<char> bytes = [] {
        std::vector<char> b(pattern_span + pattern_period);
        for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>('a' + i % pattern_period);
        return b;
    }();
    return bytes.data();
}

// Up to `len` bytes of the pattern as it continues at body offset `offset`.
asio::const_buffer pattern_slice(std::uint64_t offset, std::uint64_t len) {
    return asio::const_buffer(pattern_bytes() + offset % pattern_period,
                              static_cast<std::size_t>(std::min<std::uint64_t>(len, pattern_span)));
}

// RFC 9110 Date, recomputed at most once per second per thread.
std::string_view http_date() {
    thread_local char text[64];
    thread_local std::time_t cached_second = 0;
    thread_local std::size_t length = 0;
    std::time_t now = std::time(nullptr);
    if (now != cached_second) {
        std::tm tm{};
        gmtime_r(&now, &tm);
        length = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_second = now;
    }
    return {text, length};
}

template <class Int>
std::optional<Int> to_number(std::string_view s) {
    Int value{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return value;
}

std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        auto eq = pair.find('=');
        if (pair.substr(0, eq) == name)
            return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    }
    return std::nullopt;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

// JSON string literal; bytes >= 0x80 become \u00XX (read as Latin-1) so that any
// received byte sequence round-trips exactly and the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += '"';
}

bool is_http_parse_error(const error_code& ec) {
    return ec.category() == http::make_error_code(http::error::bad_target).category();
}

enum class Route { up, hello, bytes, chunked, echo, consume, sse, slow, status, headers, websocket,
                   not_found };

struct RouteMatch {
    Route route = Route::not_found;
    std::string_view argument; // the N of /bytes/N, /chunked/N, /status/N
};

RouteMatch match_route(std::string_view path) {
    if (path == "/up") return {Route::up, {}};
    if (path == "/") return {Route::hello, {}};
    if (path.starts_with("/bytes/")) return {Route::bytes, path.substr(7)};
    if (path.starts_with("/chunked/")) return {Route::chunked, path.substr(9)};
    if (path == "/echo") return {Route::echo, {}};
    if (path == "/consume") return {Route::consume, {}};
    if (path == "/sse") return {Route::sse, {}};
    if (path == "/slow") return {Route::slow, {}};
    if (path.starts_with("/status/")) return {Route::status, path.substr(8)};
    if (path == "/headers") return {Route::headers, {}};
    if (path == "/ws") return {Route::websocket, {}};
    return {Route::not_found, {}};
}

// Methods each route answers; nullptr = any method.
const char* allowed_methods(Route route) {
    switch (route) {
    case Route::echo: return "POST, PUT";
    case Route::consume: return "POST, PUT";
    case Route::status:
    case Route::headers:
    case Route::not_found: return nullptr;
    default: return "GET, HEAD";
    }
}

bool method_allowed(Route route, http::verb method) {
    switch (route) {
    case Route::echo:
    case Route::consume: return method == http::verb::post || method == http::verb::put;
    case Route::status:
    case Route::headers:
    case Route::not_found: return true;
    default: return method == http::verb::get || method == http::verb::head;
    }
}

template <class Socket>
class HttpSession {
public:
    HttpSession(Socket& socket, const SharedAppState& app, ConnectionList& connections)
        : socket_(socket), app_(app), connections_(connections),
          registration_(connections, &socket, &cancel_socket) {
        head_.reserve(512);
    }

    asio::awaitable<void> run() {
        for (;;) {
            registration_.set_busy(false);
            if (connections_.shutting_down() && buffer_.size() == 0) break;
            parser_.emplace();
            parser_->header_limit(max_request_head_bytes);
            parser_->body_limit(boost::none);
            auto [ec, n] = co_await http::async_read_header(socket_, buffer_, *parser_, use_tuple);
            registration_.set_busy(true);
            if (ec) {
                if (ec == http::error::header_limit)
                    co_await send_error_and_close(431, "request head too large\n");
                else if (ec != http::error::end_of_stream && ec != http::error::partial_message &&
                         is_http_parse_error(ec))
                    co_await send_error_and_close(400, "malformed request\n");
                break;
            }
            if (!co_await handle_request()) break;
            if (connections_.shutting_down()) break;
        }
        error_code ignored;
        socket_.shutdown(asio::socket_base::shutdown_send, ignored);
        socket_.close(ignored);
    }

private:
    using Request = http::request<http::buffer_body>;

    static void cancel_socket(void* socket) {
        error_code ignored;
        static_cast<Socket*>(socket)->cancel(ignored);
    }

    // Returns whether the connection may serve another request.
    asio::awaitable<bool> handle_request() {
        Request& request = parser_->get();
        const std::string_view target = request.target();
        const auto question = target.find('?');
        const std::string_view path = target.substr(0, question);
        const std::string_view query =
            question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);

        version_ = request.version();
        is_head_ = request.method() == http::verb::head;
        keep_alive_ = parser_->keep_alive() && !connections_.shutting_down();
        expects_continue_ = iequals(request[http::field::expect], "100-continue");

        const RouteMatch match = match_route(path);
        if (match.route == Route::not_found) {
            if (!co_await drain_body()) co_return false;
            co_return co_await send_text(404, "not found\n");
        }
        if (!method_allowed(match.route, request.method())) {
            if (!co_await drain_body()) co_return false;
            begin_head(405);
            add_header("Allow", allowed_methods(match.route));
            co_return co_await send_body_response("text/plain", "method not allowed\n");
        }
        if (match.route == Route::up) {
            if (!co_await drain_body()) co_return false;
            co_return co_await send_text(200, "ok\n");
        }

        // Everything below is an app route: injected latency and errors apply.
        if (app_.options.extra_latency.count() > 0) {
            if (!co_await sleep_for(app_.options.extra_latency)) co_return false;
        }
        if (app_.next_app_request_fails()) {
            if (!co_await drain_body()) co_return false;
            co_return co_await send_text(500, "injected error\n");
        }

        switch (match.route) {
        case Route::echo: co_return co_await echo();
        case Route::websocket: co_return co_await websocket_echo();
        default: break;
        }

        std::uint64_t body_bytes = 0;
        if (!co_await drain_body(&body_bytes)) co_return false;

        switch (match.route) {
        case Route::hello: co_return co_await send_text(200, app_.hello_body);
        case Route::bytes: {
            auto n = to_number<std::uint64_t>(match.argument);
            if (!n) co_return co_await send_text(400, "expected /bytes/<count>\n");
            co_return co_await send_pattern(*n);
        }
        case Route::chunked: {
            auto n = to_number<std::uint64_t>(match.argument);
            if (!n) co_return co_await send_text(400, "expected /chunked/<count>\n");
            co_return co_await send_pattern_chunked(*n);
        }
        case Route::consume: {
            char json[64];
            auto end = std::to_chars(json, json + sizeof json, body_bytes).ptr;
            std::string body = "{\"bytes\":" + std::string(json, end) + "}\n";
            begin_head(200);
            co_return co_await send_body_response("application/json", body);
        }
        case Route::sse: co_return co_await server_sent_events(query);
        case Route::slow: {
            auto ms = to_number<std::uint64_t>(query_param(query, "ms").value_or("0"));
            if (!ms) co_return co_await send_text(400, "expected /slow?ms=<milliseconds>\n");
            if (!co_await sleep_for(std::chrono::milliseconds(*ms))) co_return false;
            co_return co_await send_text(200, "slept " + std::to_string(*ms) + " ms\n");
        }
        case Route::status: {
            auto code = to_number<unsigned>(match.argument);
            if (!code || *code < 200 || *code > 599)
                co_return co_await send_text(400, "expected /status/<200..599>\n");
            if (*code == 204 || *code == 304) {
                begin_head(*code);
                co_return co_await finish_head_and_write({}) && keep_alive_;
            }
            co_return co_await send_text(*code, "status " + std::to_string(*code) + "\n");
        }
        case Route::headers:
            begin_head(200);
            co_return co_await send_body_response("application/json",
                                                  headers_json(request, body_bytes));
        default: co_return co_await send_text(404, "not found\n");
        }
    }

    // ---- response head -------------------------------------------------------

    void begin_head(unsigned status) {
        head_.clear();
        head_ += "HTTP/1.1 ";
        char digits[8];
        head_.append(digits, std::to_chars(digits, digits + sizeof digits, status).ptr);
        head_ += ' ';
        std::string_view reason = http::obsolete_reason(http::int_to_status(status));
        head_ += reason == "<unknown-status>" ? std::string_view("Status") : reason;
        head_ += "\r\n";
        head_ += app_.fixed_headers;
        add_header("Date", http_date());
    }

    void add_header(std::string_view name, std::string_view value) {
        head_ += name;
        head_ += ": ";
        head_ += value;
        head_ += "\r\n";
    }

    void add_content_length(std::uint64_t n) {
        char digits[24];
        add_header("Content-Length",
                   std::string_view(digits, std::to_chars(digits, digits + sizeof digits, n).ptr - digits));
    }

    void end_head() {
        if (connections_.shutting_down()) keep_alive_ = false; // SIGTERM: last response here
        if (!keep_alive_) head_ += "Connection: close\r\n";
        else if (version_ == 10) head_ += "Connection: keep-alive\r\n";
        head_ += "\r\n";
    }

    // Writes head_ (terminated here) followed by `body` unless HEAD; false on a write error.
    asio::awaitable<bool> finish_head_and_write(asio::const_buffer body) {
        end_head();
        std::array<asio::const_buffer, 2> buffers{asio::buffer(head_), body};
        if (is_head_) buffers[1] = {};
        auto [ec, n] = co_await asio::async_write(socket_, buffers, use_tuple);
        co_return !ec;
    }

    // Returns whether the connection may continue (written and keep-alive).
    asio::awaitable<bool> send_body_response(std::string_view content_type, std::string_view body) {
        add_header("Content-Type", content_type);
        add_content_length(body.size());
        co_return co_await finish_head_and_write(asio::buffer(body.data(), body.size())) && keep_alive_;
    }

    asio::awaitable<bool> send_text(unsigned status, std::string_view body) {
        begin_head(status);
        co_return co_await send_body_response("text/plain; charset=utf-8", body);
    }

    asio::awaitable<void> send_error_and_close(unsigned status, std::string_view body) {
        keep_alive_ = false;
        version_ = 11;
        is_head_ = false;
        co_await send_text(status, body);
    }

    asio::awaitable<bool> write_all(auto const& buffers) {
        auto [ec, n] = co_await asio::async_write(socket_, buffers, use_tuple);
        co_return !ec;
    }

    // ---- request body ----------------------------------------------------------

    char* scratch() {
        if (!scratch_) scratch_ = std::make_unique<char[]>(scratch_bytes);
        return scratch_.get();
    }

    asio::awaitable<bool> send_continue_if_expected() {
        if (!expects_continue_ || parser_->is_done()) co_return true;
        expects_continue_ = false;
        static constexpr std::string_view interim = "HTTP/1.1 100 Continue\r\n\r\n";
        co_return co_await write_all(asio::buffer(interim.data(), interim.size()));
    }

    // Reads the next piece of the request body into scratch(); nullopt on error.
    asio::awaitable<std::optional<std::size_t>> read_body_piece(bool fill_buffer) {
        auto& body = parser_->get().body();
        body.data = scratch();
        body.size = scratch_bytes;
        auto [ec, n] = fill_buffer
                           ? co_await http::async_read(socket_, buffer_, *parser_, use_tuple)
                           : co_await http::async_read_some(socket_, buffer_, *parser_, use_tuple);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return std::nullopt;
        co_return scratch_bytes - body.size;
    }

    // Reads and discards the request body so the next pipelined request parses.
    asio::awaitable<bool> drain_body(std::uint64_t* total = nullptr) {
        if (parser_->is_done()) co_return true;
        if (!co_await send_continue_if_expected()) co_return false;
        std::uint64_t bytes = 0;
        while (!parser_->is_done()) {
            auto got = co_await read_body_piece(true);
            if (!got) co_return false;
            bytes += *got;
        }
        if (total) *total = bytes;
        co_return true;
    }

    // ---- routes ----------------------------------------------------------------

    asio::awaitable<bool> sleep_for(std::chrono::milliseconds delay) {
        asio::steady_timer timer(socket_.get_executor());
        timer.expires_after(delay);
        auto [ec] = co_await timer.async_wait(use_tuple);
        co_return !ec;
    }

    asio::awaitable<bool> send_pattern(std::uint64_t size) {
        begin_head(200);
        add_header("Content-Type", "application/octet-stream");
        add_content_length(size);
        auto first = pattern_slice(0, size);
        if (!co_await finish_head_and_write(first)) co_return false;
        if (is_head_) co_return keep_alive_;
        for (std::uint64_t sent = first.size(); sent < size;) {
            auto slice = pattern_slice(sent, size - sent);
            if (!co_await write_all(slice)) co_return false;
            sent += slice.size();
        }
        co_return keep_alive_;
    }

    // Chunked framing for HTTP/1.1; HTTP/1.0 clients get a close-delimited body.
    void add_streaming_framing() {
        if (version_ >= 11) add_header("Transfer-Encoding", "chunked");
        else keep_alive_ = false;
    }

    asio::awaitable<bool> write_stream_piece(asio::const_buffer piece) {
        if (piece.size() == 0) co_return true;
        if (version_ >= 11) co_return co_await write_all(http::make_chunk(piece));
        co_return co_await write_all(piece);
    }

    asio::awaitable<bool> finish_stream() {
        if (version_ >= 11) co_return co_await write_all(http::make_chunk_last());
        co_return true;
    }

    asio::awaitable<bool> write_head_only() {
        end_head();
        co_return co_await write_all(asio::buffer(head_));
    }

    asio::awaitable<bool> send_pattern_chunked(std::uint64_t size) {
        begin_head(200);
        add_header("Content-Type", "application/octet-stream");
        add_streaming_framing();
        if (!co_await write_head_only()) co_return false;
        if (is_head_) co_return keep_alive_;
        for (std::uint64_t sent = 0; sent < size;) {
            auto slice = pattern_slice(sent, std::min<std::uint64_t>(size - sent, chunked_route_chunk_bytes));
            if (!co_await write_stream_piece(slice)) co_return false;
            sent += slice.size();
        }
        co_return co_await finish_stream() && keep_alive_;
    }

    asio::awaitable<bool> server_sent_events(std::string_view query) {
        auto count = to_number<unsigned>(query_param(query, "n").value_or("5"));
        auto interval = to_number<std::uint64_t>(query_param(query, "interval_ms").value_or("100"));
        if (!count || !interval) co_return co_await send_text(400, "expected /sse?n=<count>&interval_ms=<ms>\n");
        begin_head(200);
        add_header("Content-Type", "text/event-stream");
        add_header("Cache-Control", "no-cache");
        add_streaming_framing();
        if (!co_await write_head_only()) co_return false;
        if (is_head_) co_return keep_alive_;
        std::string event;
        for (unsigned i = 1; i <= *count; ++i) {
            if (i > 1 && !co_await sleep_for(std::chrono::milliseconds(*interval))) co_return false;
            event = "id: " + std::to_string(i) + "\ndata: event " + std::to_string(i) + " of " +
                    std::to_string(*count) + " from " + app_.options.release + "\n\n";
            if (!co_await write_stream_piece(asio::buffer(event))) co_return false;
        }
        co_return co_await finish_stream() && keep_alive_;
    }

    // Streams the request body back as it arrives: Content-Length when the
    // request had one, chunked otherwise. Memory stays at one scratch buffer.
    asio::awaitable<bool> echo() {
        Request& request = parser_->get();
        const auto length = parser_->content_length();
        const std::string content_type(request[http::field::content_type]);
        if (!co_await send_continue_if_expected()) co_return false;

        begin_head(200);
        add_header("Content-Type", content_type.empty() ? "application/octet-stream" : content_type);
        const bool chunked = !length.has_value() && version_ >= 11;
        if (length) add_content_length(*length);
        else add_streaming_framing();
        end_head();

        bool head_sent = false;
        while (!parser_->is_done()) {
            auto got = co_await read_body_piece(false);
            if (!got) co_return false;
            if (*got == 0) continue;
            asio::const_buffer piece(scratch(), *got);
            bool ok = true;
            if (!head_sent && chunked) ok = co_await write_all(beast::buffers_cat(asio::buffer(head_), http::make_chunk(piece)));
            else if (!head_sent) ok = co_await write_all(std::array<asio::const_buffer, 2>{asio::buffer(head_), piece});
            else if (chunked) ok = co_await write_all(http::make_chunk(piece));
            else ok = co_await write_all(piece);
            if (!ok) co_return false;
            head_sent = true;
        }
        if (!head_sent && !co_await write_all(asio::buffer(head_))) co_return false;
        if (chunked && !co_await write_all(http::make_chunk_last())) co_return false;
        co_return keep_alive_;
    }

    std::string headers_json(const Request& request, std::uint64_t body_bytes) {
        // Lower-cased name -> values in arrival order; a name seen twice becomes an array.
        std::vector<std::pair<std::string, std::vector<std::string_view>>> grouped;
        std::string raw = "[";
        for (auto const& field : request) {
            std::string key = lowercase(field.name_string());
            auto it = std::find_if(grouped.begin(), grouped.end(),
                                   [&](auto const& g) { return g.first == key; });
            if (it == grouped.end()) grouped.push_back({std::move(key), {field.value()}});
            else it->second.push_back(field.value());
            if (raw.size() > 1) raw += ',';
            raw += '[';
            append_json_string(raw, field.name_string());
            raw += ',';
            append_json_string(raw, field.value());
            raw += ']';
        }
        raw += ']';

        std::string json = "{\"method\":";
        append_json_string(json, request.method_string());
        json += ",\"target\":";
        append_json_string(json, request.target());
        json += ",\"version\":\"HTTP/";
        json += std::to_string(request.version() / 10) + "." + std::to_string(request.version() % 10);
        json += "\",\"headers\":{";
        bool first = true;
        for (auto const& [name, values] : grouped) {
            if (!first) json += ',';
            first = false;
            append_json_string(json, name);
            json += ':';
            if (values.size() == 1) {
                append_json_string(json, values.front());
            } else {
                json += '[';
                for (std::size_t i = 0; i < values.size(); ++i) {
                    if (i) json += ',';
                    append_json_string(json, values[i]);
                }
                json += ']';
            }
        }
        json += "},\"raw_headers\":" + raw;
        json += ",\"body_bytes\":" + std::to_string(body_bytes);
        json += ",\"release\":";
        append_json_string(json, app_.options.release);
        json += ",\"slot\":";
        append_json_string(json, app_.options.slot);
        json += "}\n";
        return json;
    }

    asio::awaitable<bool> websocket_echo() {
        Request& request = parser_->get();
        if (!websocket::is_upgrade(request)) {
            if (!co_await drain_body()) co_return false;
            begin_head(426);
            add_header("Upgrade", "websocket");
            co_return co_await send_body_response("text/plain", "websocket upgrade expected\n");
        }
        websocket::stream<Socket&> ws(socket_);
        const SharedAppState& app = app_;
        ws.set_option(websocket::stream_base::decorator([&app](websocket::response_type& response) {
            response.set(http::field::server, "releasectl-demo-app");
            response.set("X-Release", app.options.release);
            response.set("X-Slot", app.options.slot);
        }));
        ws.read_message_max(max_websocket_message_bytes);
        ws.auto_fragment(false); // echo each message as one frame
        auto [accept_ec] = co_await ws.async_accept(request, use_tuple);
        if (accept_ec) co_return false;

        beast::flat_buffer message;
        for (;;) {
            registration_.set_busy(false); // a tunnel waiting for a frame is idle
            auto [read_ec, n] = co_await ws.async_read(message, use_tuple);
            registration_.set_busy(true);
            if (read_ec) break; // includes the peer's close frame (answered by Beast)
            ws.text(ws.got_text());
            auto [write_ec, written] = co_await ws.async_write(message.data(), use_tuple);
            if (write_ec) break;
            message.consume(message.size());
            if (connections_.shutting_down()) {
                co_await ws.async_close(websocket::close_code::going_away, use_tuple);
                break;
            }
        }
        co_return false; // the connection belonged to the WebSocket
    }

    Socket& socket_;
    const SharedAppState& app_;
    ConnectionList& connections_;
    ConnectionList::Registration registration_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::buffer_body>> parser_;
    std::string head_;
    std::unique_ptr<char[]> scratch_;
    unsigned version_ = 11;
    bool is_head_ = false;
    bool keep_alive_ = true;
    bool expects_continue_ = false;
};

template <class Socket>
asio::awaitable<void> serve(Socket socket, const SharedAppState& app, ConnectionList& connections) {
    HttpSession<Socket> session(socket, app, connections);
    co_await session.run();
}

} // namespace

SharedAppState::SharedAppState(DemoAppOptions opts) : options(std::move(opts)) {
    fixed_headers = "Server: releasectl-demo-app\r\nX-Release: " + options.release +
                    "\r\nX-Slot: " + options.slot + "\r\n";
    hello_body = "hello from " + options.release + "\n";
    pattern_bytes(); // build the static body pattern before any worker runs
}

bool SharedAppState::next_app_request_fails() const {
    if (options.error_ppm == 0) return false;
    const std::uint64_t k = app_requests.fetch_add(1, std::memory_order_relaxed) + 1;
    return (k * options.error_ppm) / 1'000'000 != ((k - 1) * options.error_ppm) / 1'000'000;
}

void ConnectionList::begin_shutdown() {
    shutting_down_ = true;
    // cancel() only queues completions, so the list does not change under us.
    for (Entry* e = head_; e; e = e->next)
        if (!e->busy) e->cancel(e->socket);
}

ConnectionList::Registration::Registration(ConnectionList& list, void* socket, void (*cancel)(void*))
    : list_(list) {
    entry_.socket = socket;
    entry_.cancel = cancel;
    entry_.next = list_.head_;
    if (list_.head_) list_.head_->prev = &entry_;
    list_.head_ = &entry_;
    ++list_.size_;
}

ConnectionList::Registration::~Registration() {
    if (entry_.prev) entry_.prev->next = entry_.next;
    else list_.head_ = entry_.next;
    if (entry_.next) entry_.next->prev = entry_.prev;
    --list_.size_;
}

asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket, const SharedAppState& app,
                                       ConnectionList& connections) {
    error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    co_await serve(std::move(socket), app, connections);
}

asio::awaitable<void> serve_connection(asio::local::stream_protocol::socket socket,
                                       const SharedAppState& app, ConnectionList& connections) {
    co_await serve(std::move(socket), app, connections);
}

} // namespace releasectl::demo
