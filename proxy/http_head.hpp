#pragma once
// Strict, zero-copy HTTP/1.x head parsing and body framing for the data plane.
// We parse heads ourselves (not with Beast's parser) because the proxy must
// refuse more than Beast does (obs-fold, unknown transfer codings, identity+CL,
// bare CR/LF, duplicate Content-Length...) and because parsing into string_views
// over the read buffer costs no allocation per request.
// Pure code: no I/O, unit-tested in tests/proxy/.
#include "settings.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace releasectl::proxy {

struct HeaderField {
    std::string_view name;  // as received (case preserved)
    std::string_view value; // leading/trailing OWS removed
};

enum class BodyKind : std::uint8_t { none, content_length, chunked, until_close };

enum class ParseStatus : std::uint8_t { complete, incomplete, error };

struct ParseResult {
    ParseStatus status = ParseStatus::incomplete;
    std::size_t head_bytes = 0;   // when complete: bytes of the head incl. final CRLFCRLF
    unsigned error_status = 0;    // when error: 400, 414, 431, 501, 505 (requests) / 502 (responses)
    const char* reason = "";      // when error: short human reason, static storage
};

struct RequestHead {
    std::string_view method;
    std::string_view target;      // origin-form path?query (absolute-form is reduced to it)
    std::string_view authority;   // host from absolute-form target, else empty
    unsigned version_minor = 1;   // HTTP/1.0 or HTTP/1.1
    std::vector<HeaderField> fields; // reused across requests: cleared, capacity kept
    BodyKind body = BodyKind::none;  // never until_close for requests
    std::uint64_t content_length = 0;
    std::string_view host;        // Host header value (validated), or authority
    bool keep_alive = true;       // from version + Connection tokens
    bool upgrade = false;         // Connection: upgrade and an Upgrade header
    bool expect_continue = false; // Expect: 100-continue
    std::string_view connection;  // raw Connection value(s) for hop-by-hop stripping ("" if none)
                                  // (several Connection lines: see connection_has_token)
};

struct ResponseHead {
    unsigned status = 0;
    std::string_view reason;
    unsigned version_minor = 1;
    std::vector<HeaderField> fields;
    BodyKind body = BodyKind::none;
    std::uint64_t content_length = 0;
    bool keep_alive = true;       // upstream connection reusable after this response
    std::string_view connection;
    bool has_content_length = false; // a Content-Length was present: for HEAD/304 (body none)
                                     // content_length holds the announced size to repeat
};

// Parses and validates a request head at the start of `buffered`.
// incomplete: no CRLFCRLF yet and no limit exceeded (read more);
// error: error_status is what the client gets (400/413/414/417/431/501/505), then close.
// Absolute-form "http://host?query" (query, no path) is refused with 400: the
// reduced target "/?query" would not be a view of the buffer.
// Limits used: max_uri_bytes, max_header_bytes, max_header_count, max_body_bytes (413 for a
// Content-Length above it).
ParseResult parse_request_head(std::string_view buffered, const ProxyLimits& limits, RequestHead& out);

// Parses and validates an upstream response head. `request_method` decides HEAD
// semantics; `max_bytes` bounds the head. Any ambiguity is an error (502).
// 1xx heads are returned as complete with status < 200 (the caller skips them).
ParseResult parse_response_head(std::string_view buffered, std::size_t max_bytes,
                                std::string_view request_method, ResponseHead& out);

// True for headers that never cross a proxy: Connection, Keep-Alive,
// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, plus framing
// (Content-Length) which we regenerate, plus any token listed in `connection`.
bool is_hop_by_hop(std::string_view name, std::string_view connection);

bool iequals(std::string_view a, std::string_view b) noexcept;

// True when `token` (case-insensitive) is one of the comma-separated tokens of a
// `connection` view produced by the parsers. When a head has several Connection
// lines, `connection` spans from the first value to the end of the last one (the
// lines in between included); this function and is_hop_by_hop then read only the
// Connection lines' values inside that span, so every listed token counts.
bool connection_has_token(std::string_view connection, std::string_view token) noexcept;

// Incremental chunked-body decoder (RFC 9112 §7.1), strict: hex sizes without
// overflow, chunk extensions tolerated but bounded, CRLF exactly, trailers read
// and discarded (bounded), bare LF/CR refused.
class ChunkedDecoder {
public:
    struct Step {
        std::size_t consumed = 0;  // bytes of input used by this step
        std::string_view data;     // payload bytes (a view into input), may be empty
        bool done = false;         // terminal chunk and trailers fully consumed
        bool error = false;        // malformed: the message must be abandoned
    };
    // Decodes from `input`. Call repeatedly, advancing input by `consumed`, until
    // consumed == 0 (need more bytes), done or error. A step either consumes framing
    // bytes only (data empty) or returns data: then data == input.substr(0, consumed).
    // Bytes after the final CRLF (a pipelined request) are never consumed.
    Step next(std::string_view input);
    bool done() const { return state_ == State::done; }
    void reset() { *this = ChunkedDecoder{}; }

private:
    enum class State : std::uint8_t { size, size_lf, ext, data, data_cr, data_lf, trailer_start, trailer_line, trailer_lf, final_lf, done, error,
                                      // chunk-ext = *( ";" name [ "=" ( token / quoted-string ) ] ), no BWS
                                      ext_name, ext_value, ext_token, ext_quoted, ext_quoted_pair, ext_after_quoted,
                                      trailer_name };
    static bool in_size_line(State s) noexcept;
    static bool in_trailers(State s) noexcept;
    State state_ = State::size;
    std::uint64_t remaining_ = 0;
    std::size_t size_digits_ = 0;
    std::size_t line_bytes_ = 0;   // bounds extension/trailer line length
    std::size_t trailer_bytes_ = 0;
};

} // namespace releasectl::proxy
