// Strict HTTP/1.x head parsing (RFC 9112 / RFC 9110) over string_views into the
// caller's read buffer. One pass over the bytes: lines are found with memchr and
// validated as they are found, with table lookups per byte. Anything a peer could
// read differently from us (the root of request smuggling) is an error.
#include "proxy/http_head.hpp"

#include <array>
#include <cstring>
#include <limits>
#include <utility>

namespace releasectl::proxy {
namespace {

// ---------------------------------------------------------------- characters

enum CharClass : std::uint8_t {
    k_tchar = 1,       // RFC 9110 §5.6.2 token character
    k_field_byte = 2,  // field-value byte: HTAB, SP, VCHAR, obs-text
    k_target = 4,      // request-target byte: visible ASCII (strict)
    k_reg_name = 8,    // Host/authority reg-name: unreserved + sub-delims (minus ',')
    k_hex = 16,
    k_digit = 32,
};

constexpr std::array<std::uint8_t, 256> make_char_classes() {
    std::array<std::uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        std::uint8_t k = 0;
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        const bool digit = c >= '0' && c <= '9';
        if (alpha || digit) k |= k_tchar | k_reg_name;
        if (digit) k |= k_digit | k_hex;
        if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) k |= k_hex;
        for (char s : std::string_view("!#$%&'*+-.^_`|~"))
            if (c == static_cast<unsigned char>(s)) k |= k_tchar;
        for (char s : std::string_view("-._~!$&'()*+;="))
            if (c == static_cast<unsigned char>(s)) k |= k_reg_name;
        if (c == '\t' || (c >= 0x20 && c != 0x7f)) k |= k_field_byte;
        if (c > 0x20 && c < 0x7f) k |= k_target;
        t[static_cast<std::size_t>(c)] = k;
    }
    return t;
}
constexpr auto char_classes = make_char_classes();

inline bool is(char c, CharClass k) noexcept {
    return (char_classes[static_cast<unsigned char>(c)] & k) != 0;
}

inline char to_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

// Compares a validated token (tchar only) with a lowercase literal of letters and
// '-'. `c | 0x20` lowercases letters and maps no other tchar onto a letter or '-'.
inline bool token_is(std::string_view token, std::string_view lower_literal) noexcept {
    if (token.size() != lower_literal.size()) return false;
    for (std::size_t i = 0; i < token.size(); ++i)
        if (static_cast<char>(token[i] | 0x20) != lower_literal[i]) return false;
    return true;
}

inline bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

// Word-at-a-time screening (SWAR): heads are mostly long runs of plain bytes, so
// test eight at once and look at single bytes only around a suspicious word.
constexpr std::uint64_t ones = 0x0101010101010101ull;
constexpr std::uint64_t highs = 0x8080808080808080ull;

inline std::uint64_t load8(const char* p) noexcept {
    std::uint64_t w;
    std::memcpy(&w, p, sizeof w);
    return w;
}
// Non-zero iff some byte of w is < n (n <= 128).
inline std::uint64_t any_byte_below(std::uint64_t w, std::uint8_t n) noexcept {
    return (w - ones * n) & ~w & highs;
}
// Non-zero iff some byte of w equals b.
inline std::uint64_t any_byte_equal(std::uint64_t w, std::uint8_t b) noexcept {
    const std::uint64_t x = w ^ (ones * b);
    return (x - ones) & ~x & highs;
}

// True when every byte of [p, end) is a field-value byte (HTAB, SP, VCHAR, obs-text).
bool all_field_bytes(const char* p, const char* end) noexcept {
    for (; end - p >= 8; p += 8) {
        const auto w = load8(p);
        if ((any_byte_below(w, 0x20) | any_byte_equal(w, 0x7f)) == 0) continue;
        for (int i = 0; i < 8; ++i)
            if (!is(p[i], k_field_byte)) return false;
    }
    for (; p < end; ++p)
        if (!is(*p, k_field_byte)) return false;
    return true;
}

// Skips request-target bytes (visible ASCII) from p; returns the first other byte.
const char* skip_target_bytes(const char* p, const char* end) noexcept {
    for (; end - p >= 8; p += 8) {
        const auto w = load8(p);
        // bytes < 0x21, or >= 0x7f (high bit set, or exactly 0x7f)
        if ((any_byte_below(w, 0x21) | (w & highs) | any_byte_equal(w, 0x7f)) != 0) break;
    }
    while (p < end && is(*p, k_target)) ++p;
    return p;
}

inline std::string_view trim_ows(std::string_view v) noexcept {
    while (!v.empty() && is_ows(v.front())) v.remove_prefix(1);
    while (!v.empty() && is_ows(v.back())) v.remove_suffix(1);
    return v;
}

// Calls fn(token) for each element of a comma-separated list (OWS trimmed, empty
// elements skipped as RFC 9110 §5.6.1 asks); stops early when fn returns true.
template <class Fn>
bool any_list_element(std::string_view list, Fn&& fn) {
    while (!list.empty()) {
        const auto comma = list.find(',');
        const auto element = trim_ows(list.substr(0, comma));
        if (!element.empty() && fn(element)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

// ---------------------------------------------------------------- lines

// Walks the head line by line. Every LF must be preceded by CR; a CR not
// followed by LF is refused as soon as the byte after it is known.
class LineCursor {
public:
    enum class Event { line, empty_line, need_more, over_limit, bare_lf, bare_cr };

    LineCursor(std::string_view buffer, std::size_t limit) noexcept
        : buf_(buffer.data()), size_(buffer.size()), limit_(limit),
          scan_end_(buffer.size() < limit ? buffer.size() : limit) {}

    Event next(std::string_view& line) noexcept {
        if (pos_ >= scan_end_) return size_ > limit_ ? Event::over_limit : Event::need_more;
        const char* p = buf_ + pos_;
        if (*p == '\r') {
            if (pos_ + 1 >= size_) return Event::need_more;
            if (p[1] != '\n') return Event::bare_cr;
            pos_ += 2;
            return pos_ > limit_ ? Event::over_limit : Event::empty_line;
        }
        const auto* lf = static_cast<const char*>(std::memchr(p, '\n', scan_end_ - pos_));
        if (lf == nullptr) {
            // Unterminated line: a CR inside it with a known next byte is bare.
            const auto* cr = static_cast<const char*>(std::memchr(p, '\r', scan_end_ - pos_));
            if (cr != nullptr && cr + 1 < buf_ + scan_end_) return Event::bare_cr;
            return size_ > limit_ ? Event::over_limit : Event::need_more;
        }
        if (lf == p || lf[-1] != '\r') return Event::bare_lf;
        line = std::string_view(p, static_cast<std::size_t>(lf - 1 - p));
        pos_ = static_cast<std::size_t>(lf + 1 - buf_);
        return Event::line;
    }

    std::size_t pos() const noexcept { return pos_; }

private:
    const char* buf_;
    std::size_t size_;
    std::size_t limit_;
    std::size_t scan_end_; // never look for line ends past the limit
    std::size_t pos_ = 0;
};

// Parses "name: value" into `out`. Returns nullptr, or the reason it is invalid.
const char* parse_field_line(std::string_view line, HeaderField& out) noexcept {
    const char* p = line.data();
    const char* const end = p + line.size();
    if (is_ows(*p)) return "obs-fold (line folding) is not allowed";
    const char* q = p;
    while (q < end && is(*q, k_tchar)) ++q;
    if (q == end) return "header line without colon";
    if (*q != ':') return is_ows(*q) ? "whitespace before colon in header" : "invalid character in header name";
    if (q == p) return "empty header name";
    out.name = std::string_view(p, static_cast<std::size_t>(q - p));
    const char* b = q + 1;
    const char* e = end;
    if (!all_field_bytes(b, e)) return "invalid character in header value";
    while (b < e && is_ows(*b)) ++b;
    while (e > b && is_ows(e[-1])) --e;
    out.value = std::string_view(b, static_cast<std::size_t>(e - b));
    return nullptr;
}

// CGI-style servers (Rack, WSGI, PHP) turn "Content_Length" and "Content-Length"
// into the same variable. An underscore twin of a field the proxy frames or sets
// would let a client smuggle a body length past us or forge X-Forwarded-For, so
// such names are refused (only called for names that contain '_').
bool twins_a_proxy_field(std::string_view name) noexcept {
    static constexpr std::string_view controlled[] = {"content-length",  "transfer-encoding", "x-forwarded-for",
                                                      "x-forwarded-proto", "x-forwarded-host", "x-request-id"};
    for (const auto literal : controlled) {
        if (literal.size() != name.size()) continue;
        std::size_t i = 0;
        while (i < name.size() && (name[i] == '_' ? '-' : to_lower(name[i])) == literal[i]) ++i;
        if (i == name.size()) return true;
    }
    return false;
}

// Content-Length = 1*DIGIT, at most 2^63-1.
bool parse_content_length(std::string_view v, std::uint64_t& out) noexcept {
    if (v.empty()) return false;
    constexpr std::uint64_t max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    std::uint64_t n = 0;
    for (char c : v) {
        if (!is(c, k_digit)) return false;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (n > (max - d) / 10) return false;
        n = n * 10 + d;
    }
    out = n;
    return true;
}

// authority without userinfo: ( "[" IPv6 "]" / IPv4 / reg-name ) [ ":" 1*5DIGIT ]
bool valid_authority(std::string_view a) noexcept {
    std::size_t i = 0;
    const std::size_t n = a.size();
    if (n == 0) return false;
    if (a[0] == '[') {
        i = 1;
        bool colon = false;
        while (i < n && a[i] != ']') {
            if (a[i] == ':') colon = true;
            else if (!is(a[i], k_hex) && a[i] != '.') return false;
            ++i;
        }
        if (i == n || i == 1 || !colon) return false;
        ++i; // past ']'
    } else {
        while (i < n && a[i] != ':') {
            if (a[i] == '%') {
                if (i + 2 >= n || !is(a[i + 1], k_hex) || !is(a[i + 2], k_hex)) return false;
                i += 3;
                continue;
            }
            if (!is(a[i], k_reg_name)) return false;
            ++i;
        }
        if (i == 0) return false; // empty host
    }
    if (i == n) return true;
    if (a[i] != ':') return false;
    const std::size_t digits = n - i - 1;
    if (digits == 0 || digits > 5) return false;
    unsigned port = 0;
    for (++i; i < n; ++i) {
        if (!is(a[i], k_digit)) return false;
        port = port * 10 + static_cast<unsigned>(a[i] - '0');
    }
    return port <= 65535;
}

// "HTTP/d.d": 0 or 1 = the minor of a supported version, -1 malformed, -2 unsupported.
int parse_version(std::string_view v) noexcept {
    if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !is(v[5], k_digit) || v[6] != '.' || !is(v[7], k_digit))
        return -1;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) return -2;
    return v[7] - '0';
}

ParseResult failure(unsigned status, const char* reason) noexcept {
    ParseResult r;
    r.status = ParseStatus::error;
    r.error_status = status;
    r.reason = reason;
    return r;
}

ParseResult complete(std::size_t head_bytes) noexcept {
    ParseResult r;
    r.status = ParseStatus::complete;
    r.head_bytes = head_bytes;
    return r;
}

// Several Connection lines: extend the view to the end of the latest value (see
// connection_has_token for how such a span is read back).
void note_connection(std::string_view& connection, std::string_view value) noexcept {
    if (connection.data() == nullptr) {
        connection = value;
        return;
    }
    connection = std::string_view(connection.data(),
                                  static_cast<std::size_t>(value.data() + value.size() - connection.data()));
}

template <class Fn>
bool any_connection_token(std::string_view connection, Fn&& fn) {
    // First segment: the first Connection value. Later segments (after CRLF) are
    // whole header lines: only the Connection ones count.
    auto crlf = connection.find("\r\n");
    if (any_list_element(connection.substr(0, crlf), fn)) return true;
    while (crlf != std::string_view::npos) {
        connection.remove_prefix(crlf + 2);
        crlf = connection.find("\r\n");
        const auto line = connection.substr(0, crlf);
        const auto colon = line.find(':');
        if (colon != std::string_view::npos && iequals(line.substr(0, colon), "connection") &&
            any_list_element(line.substr(colon + 1), fn))
            return true;
    }
    return false;
}

struct ConnectionTokens {
    bool close = false;
    bool keep_alive = false;
    bool upgrade = false;

    void add(std::string_view value) {
        any_list_element(value, [this](std::string_view t) {
            if (iequals(t, "close")) close = true;
            else if (iequals(t, "keep-alive")) keep_alive = true;
            else if (iequals(t, "upgrade")) upgrade = true;
            return false;
        });
    }
};

template <class Head>
void reset_keeping_capacity(Head& head) {
    auto fields = std::move(head.fields);
    fields.clear();
    head = Head{};
    head.fields = std::move(fields);
}

const std::string_view root_path = "/";

// request-line = method SP request-target SP HTTP-version
ParseResult parse_request_line(std::string_view line, const ProxyLimits& limits, RequestHead& out) {
    std::size_t i = 0;
    const std::size_t n = line.size();
    while (i < n && is(line[i], k_tchar)) ++i;
    if (i == 0 || i == n || line[i] != ' ') return failure(400, "malformed request line");
    out.method = line.substr(0, i);

    const std::size_t target_start = ++i;
    i = static_cast<std::size_t>(skip_target_bytes(line.data() + i, line.data() + n) - line.data());
    const auto target = line.substr(target_start, i - target_start);
    if (target.size() > limits.max_uri_bytes) return failure(414, "request target too long");
    if (target.empty() || i == n || line[i] != ' ') return failure(400, "malformed request line");

    const int minor = parse_version(line.substr(i + 1));
    if (minor == -1) return failure(400, "malformed HTTP version");
    if (minor == -2) return failure(505, "HTTP version not supported");
    out.version_minor = static_cast<unsigned>(minor);

    if (out.method == "CONNECT") return failure(501, "CONNECT not supported");
    if (target.find('#') != std::string_view::npos) return failure(400, "fragment in request target");

    if (target[0] == '/') {
        out.target = target;
    } else if (target == "*") {
        if (out.method != "OPTIONS") return failure(400, "asterisk-form is only for OPTIONS");
        out.target = target;
    } else {
        // absolute-form: http(s)://authority[/path][?query]
        std::size_t scheme = 0;
        if (target.size() > 7 && iequals(target.substr(0, 7), "http://")) scheme = 7;
        else if (target.size() > 8 && iequals(target.substr(0, 8), "https://")) scheme = 8;
        if (scheme == 0) return failure(400, "invalid request target");
        const auto rest = target.substr(scheme);
        const auto path_start = rest.find_first_of("/?");
        const auto authority = rest.substr(0, path_start);
        if (!valid_authority(authority)) return failure(400, "invalid authority in request target");
        out.authority = authority;
        if (path_start == std::string_view::npos) {
            out.target = root_path;
        } else if (rest[path_start] == '/') {
            out.target = rest.substr(path_start);
        } else {
            // "http://host?q" would need "/?q", which is not a view of the buffer.
            return failure(400, "absolute-form target with a query but no path");
        }
    }
    return {};
}

// status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ]
bool parse_status_line(std::string_view line, ResponseHead& out) noexcept {
    if (line.size() < 12) return false;
    const int minor = parse_version(line.substr(0, 8));
    if (minor < 0 || line[8] != ' ') return false;
    if (!is(line[9], k_digit) || !is(line[10], k_digit) || !is(line[11], k_digit)) return false;
    out.status = static_cast<unsigned>((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
    if (out.status < 100 || out.status > 599) return false;
    out.version_minor = static_cast<unsigned>(minor);
    if (line.size() == 12) return true; // tolerate a missing SP before an empty reason
    if (line[12] != ' ') return false;
    const auto reason = line.substr(13);
    for (char c : reason)
        if (!is(c, k_field_byte)) return false;
    out.reason = reason;
    return true;
}

} // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (to_lower(a[i]) != to_lower(b[i])) return false;
    return true;
}

bool connection_has_token(std::string_view connection, std::string_view token) noexcept {
    return any_connection_token(connection, [token](std::string_view t) { return iequals(t, token); });
}

bool is_hop_by_hop(std::string_view name, std::string_view connection) {
    switch (name.size()) {
    case 2: if (iequals(name, "te")) return true; break;
    case 7: if (iequals(name, "trailer") || iequals(name, "upgrade")) return true; break;
    case 10: if (iequals(name, "connection") || iequals(name, "keep-alive")) return true; break;
    case 14: if (iequals(name, "content-length")) return true; break;
    case 16: if (iequals(name, "proxy-connection")) return true; break;
    case 17: if (iequals(name, "transfer-encoding")) return true; break;
    default: break;
    }
    return !connection.empty() && connection_has_token(connection, name);
}

ParseResult parse_request_head(std::string_view buffered, const ProxyLimits& limits, RequestHead& out) {
    reset_keeping_capacity(out);
    LineCursor cursor(buffered, limits.max_header_bytes);
    std::string_view line;

    // Request line; empty lines before it are skipped (RFC 9112 §2.2).
    for (;;) {
        const auto event = cursor.next(line);
        if (event == LineCursor::Event::line) break;
        if (event == LineCursor::Event::empty_line) continue;
        if (event == LineCursor::Event::bare_lf) return failure(400, "bare LF in request head");
        if (event == LineCursor::Event::bare_cr) return failure(400, "bare CR in request head");
        const std::size_t pos = cursor.pos();
        const std::size_t partial = buffered.size() > pos ? buffered.size() - pos : 0;
        if (partial > limits.max_uri_bytes + 64) return failure(414, "request line too long");
        if (event == LineCursor::Event::over_limit) {
            // The unterminated request line alone is too long, or empty lines flooded the limit.
            const bool line_started = partial > 0 && buffered[pos] != '\r';
            return line_started ? failure(414, "request line too long")
                                : failure(431, "request header section too large");
        }
        return {}; // incomplete
    }
    if (auto r = parse_request_line(line, limits, out); r.status == ParseStatus::error) return r;

    bool has_host = false, has_te = false, has_cl = false, has_upgrade = false, refuse_upgrade = false,
         bad_expect = false;
    ConnectionTokens tokens;
    for (;;) {
        const auto event = cursor.next(line);
        if (event == LineCursor::Event::empty_line) break;
        switch (event) {
        case LineCursor::Event::need_more: return {};
        case LineCursor::Event::over_limit: return failure(431, "request header section too large");
        case LineCursor::Event::bare_lf: return failure(400, "bare LF in request head");
        case LineCursor::Event::bare_cr: return failure(400, "bare CR in request head");
        default: break;
        }
        if (out.fields.size() >= limits.max_header_count) return failure(431, "too many header fields");
        HeaderField field;
        if (const char* why = parse_field_line(line, field)) return failure(400, why);
        out.fields.push_back(field);

        const auto name = field.name;
        const auto value = field.value;
        if (std::memchr(name.data(), '_', name.size()) != nullptr && twins_a_proxy_field(name))
            return failure(400, "header name with '_' twins a framing or forwarding field");
        switch (name.size()) {
        case 4:
            if (token_is(name, "host")) {
                if (has_host) return failure(400, "duplicate Host header");
                if (!valid_authority(value)) return failure(400, "invalid Host header");
                has_host = true;
                out.host = value;
            }
            break;
        case 6:
            if (token_is(name, "expect")) {
                if (iequals(value, "100-continue")) out.expect_continue = true;
                else bad_expect = true;
            }
            break;
        case 7:
            if (token_is(name, "upgrade")) {
                has_upgrade = true;
                // h2c is never tunnelled: after a 101 the client would speak
                // HTTP/2 straight to the app, past routing, limits and metrics
                // (h2c smuggling). The request is forwarded as plain HTTP/1.1.
                if (any_list_element(value, [](std::string_view t) { return iequals(t, "h2c"); })) refuse_upgrade = true;
            }
            break;
        case 10:
            if (token_is(name, "connection")) {
                note_connection(out.connection, value);
                tokens.add(value);
            }
            break;
        case 14:
            if (token_is(name, "content-length")) {
                if (has_cl) return failure(400, "duplicate Content-Length");
                if (!parse_content_length(value, out.content_length)) return failure(400, "invalid Content-Length");
                has_cl = true;
            }
            break;
        case 17:
            if (token_is(name, "transfer-encoding")) {
                if (has_te) return failure(400, "duplicate Transfer-Encoding");
                if (!iequals(value, "chunked")) return failure(400, "Transfer-Encoding other than chunked");
                has_te = true;
            }
            break;
        default: break;
        }
    }

    if (out.version_minor == 1 && !has_host) return failure(400, "missing Host header");
    if (has_te && out.version_minor == 0) return failure(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (has_te && has_cl) return failure(400, "both Content-Length and Transfer-Encoding");
    if (has_cl && out.content_length > limits.max_body_bytes) return failure(413, "request body too large");
    if (bad_expect) return failure(417, "unsupported expectation");

    if (!out.authority.empty()) out.host = out.authority; // absolute-form wins over Host
    if (out.version_minor == 0) out.expect_continue = false; // RFC 9110 §10.1.1: ignore for 1.0
    out.keep_alive = tokens.close ? false : (out.version_minor == 1 || tokens.keep_alive);
    out.upgrade = tokens.upgrade && has_upgrade && !refuse_upgrade;
    if (has_te) out.body = BodyKind::chunked;
    else if (out.content_length > 0) out.body = BodyKind::content_length;
    return complete(cursor.pos());
}

ParseResult parse_response_head(std::string_view buffered, std::size_t max_bytes,
                                std::string_view request_method, ResponseHead& out) {
    reset_keeping_capacity(out);
    LineCursor cursor(buffered, max_bytes);
    std::string_view line;

    auto event = cursor.next(line);
    switch (event) {
    case LineCursor::Event::line: break;
    case LineCursor::Event::need_more: return {};
    case LineCursor::Event::over_limit: return failure(502, "upstream response head too large");
    case LineCursor::Event::empty_line: return failure(502, "empty line before upstream status line");
    default: return failure(502, "bare CR or LF in upstream response head");
    }
    if (!parse_status_line(line, out)) return failure(502, "invalid upstream status line");

    bool has_te = false;
    ConnectionTokens tokens;
    for (;;) {
        event = cursor.next(line);
        if (event == LineCursor::Event::empty_line) break;
        switch (event) {
        case LineCursor::Event::need_more: return {};
        case LineCursor::Event::over_limit: return failure(502, "upstream response head too large");
        case LineCursor::Event::bare_lf:
        case LineCursor::Event::bare_cr: return failure(502, "bare CR or LF in upstream response head");
        default: break;
        }
        HeaderField field;
        if (parse_field_line(line, field) != nullptr) return failure(502, "invalid upstream header line");
        out.fields.push_back(field);

        const auto name = field.name;
        switch (name.size()) {
        case 10:
            if (token_is(name, "connection")) {
                note_connection(out.connection, field.value);
                tokens.add(field.value);
            }
            break;
        case 14:
            if (token_is(name, "content-length")) {
                if (out.has_content_length) return failure(502, "duplicate upstream Content-Length");
                if (!parse_content_length(field.value, out.content_length))
                    return failure(502, "invalid upstream Content-Length");
                out.has_content_length = true;
            }
            break;
        case 17:
            if (token_is(name, "transfer-encoding")) {
                if (has_te) return failure(502, "duplicate upstream Transfer-Encoding");
                if (!iequals(field.value, "chunked")) return failure(502, "upstream Transfer-Encoding other than chunked");
                has_te = true;
            }
            break;
        default: break;
        }
    }

    if (has_te && out.version_minor == 0) return failure(502, "Transfer-Encoding in an HTTP/1.0 response");
    if (has_te && out.has_content_length) return failure(502, "upstream sent both Content-Length and Transfer-Encoding");

    out.keep_alive = tokens.close ? false : (out.version_minor == 1 || tokens.keep_alive);

    const bool informational = out.status < 200;
    if (informational || out.status == 204) {
        // These never have a body; framing headers on them are ignored, but a 204
        // that announced one may have sent bytes we will not read: don't reuse.
        if (out.status == 204 && (has_te || out.content_length > 0)) out.keep_alive = false;
        out.body = BodyKind::none;
        out.content_length = 0;
        out.has_content_length = false;
    } else if (out.status == 304 || request_method == "HEAD") {
        out.body = BodyKind::none; // content_length stays as announced (informational)
    } else if (has_te) {
        out.body = BodyKind::chunked;
    } else if (out.has_content_length) {
        out.body = out.content_length > 0 ? BodyKind::content_length : BodyKind::none;
    } else {
        out.body = BodyKind::until_close;
        out.keep_alive = false;
    }
    return complete(cursor.pos());
}

} // namespace releasectl::proxy
