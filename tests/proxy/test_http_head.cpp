// Strict request/response head parsing: every refusal rule has its own case with
// the exact status the client (or, for responses, the proxy) ends up with.
#include "proxy/http_head.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

using namespace releasectl::proxy;
using namespace std::string_literals;

namespace {

ParseResult parse_req(std::string_view wire, RequestHead& head, const ProxyLimits& limits = {}) {
    return parse_request_head(wire, limits, head);
}

// 0 when the head parsed (or is incomplete), else the error status.
unsigned request_error(std::string_view wire, const ProxyLimits& limits = {}) {
    RequestHead head;
    const auto r = parse_request_head(wire, limits, head);
    return r.status == ParseStatus::error ? r.error_status : 0;
}

ParseStatus request_status(std::string_view wire, const ProxyLimits& limits = {}) {
    RequestHead head;
    return parse_request_head(wire, limits, head).status;
}

// A request with one extra header line, for the many header-value cases.
std::string with_header(std::string_view line) {
    return "POST /upload HTTP/1.1\r\nHost: example.com\r\n" + std::string(line) + "\r\n\r\n";
}

ParseResult parse_resp(std::string_view wire, ResponseHead& head, std::string_view method = "GET",
                       std::size_t max_bytes = 64 * 1024) {
    return parse_response_head(wire, max_bytes, method, head);
}

unsigned response_error(std::string_view wire, std::string_view method = "GET") {
    ResponseHead head;
    const auto r = parse_response_head(wire, 64 * 1024, method, head);
    return r.status == ParseStatus::error ? r.error_status : 0;
}

} // namespace

// ------------------------------------------------------------------ requests

TEST_CASE("request: simple GET parses into views of the buffer") {
    const std::string wire = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  curl/8 \t\r\n\r\n";
    RequestHead head;
    const auto r = parse_req(wire, head);
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(r.head_bytes == wire.size());
    CHECK(head.method == "GET");
    CHECK(head.target == "/index.html?q=1");
    CHECK(head.authority.empty());
    CHECK(head.version_minor == 1);
    CHECK(head.host == "example.com");
    CHECK(head.keep_alive);
    CHECK_FALSE(head.upgrade);
    CHECK_FALSE(head.expect_continue);
    CHECK(head.body == BodyKind::none);
    CHECK(head.connection.empty());
    REQUIRE(head.fields.size() == 2);
    CHECK(head.fields[0].name == "Host");
    CHECK(head.fields[1].name == "User-Agent");
    CHECK(head.fields[1].value == "curl/8");
    CHECK(head.method.data() == wire.data());
}

TEST_CASE("request: pipelined bytes after the head are not part of it") {
    const std::string first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    const std::string wire = first + "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    RequestHead head;
    auto r = parse_req(wire, head);
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(r.head_bytes == first.size());
    CHECK(head.target == "/a");
    r = parse_req(std::string_view(wire).substr(r.head_bytes), head);
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(head.target == "/b");
    CHECK(head.fields.size() == 1); // cleared between parses
}

TEST_CASE("request: fed byte by byte, incomplete until the very last byte") {
    const std::string wire =
        "POST /submit HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
    const std::size_t head_size = wire.size() - 5;
    RequestHead head;
    for (std::size_t k = 0; k < head_size; ++k) {
        const auto r = parse_req(std::string_view(wire).substr(0, k), head);
        INFO("prefix " << k);
        REQUIRE(r.status == ParseStatus::incomplete);
    }
    const auto r = parse_req(std::string_view(wire).substr(0, head_size), head);
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(r.head_bytes == head_size);
    CHECK(head.body == BodyKind::content_length);
    CHECK(head.content_length == 5);
}

TEST_CASE("request: empty input and a lone CR are incomplete") {
    CHECK(request_status("") == ParseStatus::incomplete);
    CHECK(request_status("\r") == ParseStatus::incomplete);
    CHECK(request_status("GET / HTTP/1.1\r") == ParseStatus::incomplete);
    CHECK(request_status("GET / HTTP/1.1\r\nHost: a\r\n\r") == ParseStatus::incomplete);
}

TEST_CASE("request: leading empty lines are skipped and counted in head_bytes") {
    const std::string wire = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    RequestHead head;
    const auto r = parse_req(wire, head);
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(r.head_bytes == wire.size());
    CHECK(head.method == "GET");
}

TEST_CASE("request: bare LF is refused, even before the head is complete") {
    CHECK(request_error("GET / HTTP/1.1\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/1.1\r\nHost: h\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/1.1\r\nHost: h\r\n\n") == 400);
    CHECK(request_error("GET / HTTP/1.1\n\n") == 400);
    CHECK(request_error("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    // incomplete heads: no CRLFCRLF yet
    CHECK(request_error("GET / HTTP/1.1\r\nX: a\nY") == 400);
    CHECK(request_error("GET / HTTP/1.1\n") == 400);
}

TEST_CASE("request: bare CR is refused, even before the head is complete") {
    CHECK(request_error("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n") == 400);
    CHECK(request_error("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/1.1\r\nHost: h\r\n\rX") == 400);
    CHECK(request_error("\rGET / HTTP/1.1\r\n") == 400);
    // incomplete
    CHECK(request_error("GET / HTTP/1.1\r\nX: a\rb") == 400);
    CHECK(request_error("GET / HTT\rP") == 400);
}

TEST_CASE("request: malformed methods") {
    CHECK(request_error("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error(" / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("G\x80T / HTTP/1.1\r\nHost: h\r\n\r\n"s) == 400);
    // any token is a method; case is kept
    RequestHead head;
    const std::string wire = "PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n";
    REQUIRE(parse_req(wire, head).status == ParseStatus::complete);
    CHECK(head.method == "PURGE");
}

TEST_CASE("request: spacing in the request line is exactly one SP") {
    CHECK(request_error("GET  / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET /  HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/1.1 \r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error(" GET / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("request: malformed versions are 400") {
    CHECK(request_error("GET / http/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET /\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET / \r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/1.1x\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/11\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/1.10\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTPS/1.1\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("request: well-formed but unsupported versions are 505") {
    CHECK(request_error("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == 505);
    CHECK(request_error("GET / HTTP/0.9\r\nHost: h\r\n\r\n") == 505);
    CHECK(request_error("GET / HTTP/1.2\r\nHost: h\r\n\r\n") == 505);
    CHECK(request_error("GET / HTTP/3.0\r\nHost: h\r\n\r\n") == 505);
    // the HTTP/2 connection preface
    CHECK(request_error("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == 505);
    // known as soon as the request line is complete
    CHECK(request_error("GET / HTTP/2.0\r\nHost") == 505);
}

TEST_CASE("request: HTTP/1.0 needs no Host and defaults to close") {
    const std::string wire = "GET / HTTP/1.0\r\n\r\n";
    RequestHead head;
    REQUIRE(parse_req(wire, head).status == ParseStatus::complete);
    CHECK(head.version_minor == 0);
    CHECK_FALSE(head.keep_alive);
    CHECK(head.host.empty());

    const std::string ka = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: h\r\n\r\n";
    REQUIRE(parse_req(ka, head).status == ParseStatus::complete);
    CHECK(head.keep_alive);
    CHECK(head.host == "h");
}

TEST_CASE("request: target bytes are visible ASCII only") {
    CHECK(request_error("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n"s) == 400);
    CHECK(request_error("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n"s) == 400);
    CHECK(request_error("GET /caf%C3%A9?x=%20 HTTP/1.1\r\nHost: h\r\n\r\n") == 0);
}

TEST_CASE("request: a fragment in the target is refused") {
    CHECK(request_error("GET /page#frag HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET http://h/page#x HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("request: target longer than max_uri_bytes is 414") {
    ProxyLimits limits;
    limits.max_uri_bytes = 100;
    const std::string at_limit = "/" + std::string(99, 'a');
    CHECK(request_error("GET " + at_limit + " HTTP/1.1\r\nHost: h\r\n\r\n", limits) == 0);
    const std::string over = "/" + std::string(100, 'a');
    CHECK(request_error("GET " + over + " HTTP/1.1\r\nHost: h\r\n\r\n", limits) == 414);
    // complete request line, head still incomplete
    CHECK(request_error("GET " + over + " HTTP/1.1\r\nHost:", limits) == 414);
}

TEST_CASE("request: an unterminated request line beyond max_uri_bytes + 64 is 414 right away") {
    ProxyLimits limits;
    limits.max_uri_bytes = 100;
    const std::string start = "GET /" + std::string(250, 'a');
    CHECK(request_status(start.substr(0, 164), limits) == ParseStatus::incomplete);
    CHECK(request_error(start.substr(0, 165), limits) == 414);
    // the request line alone exceeding max_header_bytes is also 414
    limits.max_uri_bytes = 1000;
    limits.max_header_bytes = 100;
    CHECK(request_error(start, limits) == 414);
}

TEST_CASE("request: header section larger than max_header_bytes is 431") {
    ProxyLimits limits;
    limits.max_header_bytes = 200;
    const std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
    const std::string full = head + std::string(200, 'p') + "\r\n\r\n";
    CHECK(request_status(full.substr(0, 200), limits) == ParseStatus::incomplete);
    CHECK(request_error(full.substr(0, 201), limits) == 431);
    CHECK(request_error(full, limits) == 431);
}

TEST_CASE("request: a head of exactly max_header_bytes is accepted, with a body behind it") {
    const std::string prefix = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
    const std::string wire = prefix + std::string(50, 'p') + "\r\n\r\n";
    ProxyLimits limits;
    limits.max_header_bytes = wire.size();
    RequestHead head;
    const auto r = parse_req(wire + "trailing body bytes", head, limits);
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(r.head_bytes == wire.size());
    limits.max_header_bytes = wire.size() - 1;
    CHECK(request_error(wire + "trailing", limits) == 431);
    CHECK(request_error(wire, limits) == 431);
}

TEST_CASE("request: a flood of leading empty lines hits 431") {
    ProxyLimits limits;
    limits.max_header_bytes = 64;
    std::string wire;
    for (int i = 0; i < 40; ++i) wire += "\r\n";
    CHECK(request_error(wire, limits) == 431);
}

TEST_CASE("request: more than max_header_count fields is 431") {
    ProxyLimits limits;
    limits.max_header_count = 3;
    const std::string three = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    CHECK(request_error(three, limits) == 0);
    const std::string four = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    CHECK(request_error(four, limits) == 431);
}

TEST_CASE("request: absolute-form sets authority, reduces target, and overrides Host") {
    const std::string wire = "GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n";
    RequestHead head;
    REQUIRE(parse_req(wire, head).status == ParseStatus::complete);
    CHECK(head.authority == "example.com:8080");
    CHECK(head.target == "/a/b?x=1");
    CHECK(head.host == "example.com:8080");

    const std::string bare = "GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
    REQUIRE(parse_req(bare, head).status == ParseStatus::complete);
    CHECK(head.authority == "example.com");
    CHECK(head.target == "/");

    const std::string v10 = "GET http://[::1]:81/x HTTP/1.0\r\n\r\n";
    REQUIRE(parse_req(v10, head).status == ParseStatus::complete);
    CHECK(head.host == "[::1]:81");
}

TEST_CASE("request: absolute-form still needs Host in HTTP/1.1") {
    CHECK(request_error("GET http://example.com/ HTTP/1.1\r\n\r\n") == 400);
}

TEST_CASE("request: invalid absolute-form and other target forms are 400") {
    CHECK(request_error("GET ftp://example.com/ HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET http://user@example.com/ HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET http:///path HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET http://example.com?q HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET http:// HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(request_error("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("request: asterisk-form only with OPTIONS") {
    const std::string wire = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    RequestHead head;
    REQUIRE(parse_req(wire, head).status == ParseStatus::complete);
    CHECK(head.target == "*");
    CHECK(request_error("GET * HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("request: CONNECT is 501") {
    RequestHead head;
    const auto r = parse_req("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", head);
    REQUIRE(r.status == ParseStatus::error);
    CHECK(r.error_status == 501);
    CHECK(std::string_view(r.reason) == "CONNECT not supported");
}

TEST_CASE("request: header names are tokens immediately followed by a colon") {
    CHECK(request_error(with_header("Content-Type : text/plain")) == 400);
    CHECK(request_error(with_header("Content-Type\t: text/plain")) == 400);
    CHECK(request_error(with_header(": no name")) == 400);
    CHECK(request_error(with_header("NoColonHere")) == 400);
    CHECK(request_error(with_header("X@Y: 1")) == 400);
    CHECK(request_error(with_header("X\"Y: 1")) == 400);
    CHECK(request_error(with_header("X-Ok_1.2~!: 1")) == 0);
}

TEST_CASE("request: obs-fold is refused") {
    CHECK(request_error("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n") == 400);
    // whitespace before the first field line (RFC 9112 §2.2)
    CHECK(request_error("GET / HTTP/1.1\r\n Host: h\r\n\r\n") == 400);
}

TEST_CASE("request: values are OWS-trimmed; HTAB and obs-text are allowed") {
    const std::string wire = with_header("X-A: \t a\tb \xff\xfe \t");
    RequestHead head;
    REQUIRE(parse_req(wire, head).status == ParseStatus::complete);
    REQUIRE(head.fields.size() == 2);
    CHECK(head.fields[1].value == "a\tb \xff\xfe");
    const std::string empty = with_header("X-Empty:   ");
    REQUIRE(parse_req(empty, head).status == ParseStatus::complete);
    CHECK(head.fields[1].value.empty());
}

TEST_CASE("request: NUL, DEL and other controls in a value are 400") {
    CHECK(request_error(with_header("X-A: a\0b"s)) == 400);
    CHECK(request_error(with_header("X-A: a\x01")) == 400);
    CHECK(request_error(with_header("X-A: a\x7f")) == 400);
    CHECK(request_error(with_header("X-A: \x1b[31m")) == 400);
}

TEST_CASE("request: a bad byte is found at any position of a long value or target") {
    // the scanners test eight bytes at a time: move the bad byte across word boundaries
    const std::string plain(40, 'v');
    for (std::size_t k = 0; k < plain.size(); ++k) {
        INFO("position " << k);
        for (char bad : {'\0', '\x01', '\x1f', '\x7f', '\r', '\n'}) {
            std::string value = plain;
            value[k] = bad;
            CHECK(request_error(with_header("X-Long: " + value)) == 400);
        }
        std::string ok = plain;
        ok[k] = '\t';
        ok[(k + 7) % plain.size()] = '\x80';
        CHECK(request_error(with_header("X-Long: " + ok)) == 0);
        for (char bad : {'\0', '\t', ' ', '\x7f', '\x80', '\xff'}) {
            std::string target = "/" + plain;
            target[k + 1] = bad;
            CHECK(request_error("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
        }
    }
    CHECK(request_error("GET /" + plain + " HTTP/1.1\r\nHost: h\r\n\r\n") == 0);
}

TEST_CASE("request: a valid Content-Length frames the body") {
    const std::string wire = with_header("Content-Length: 0042");
    RequestHead head;
    REQUIRE(parse_req(wire, head).status == ParseStatus::complete);
    CHECK(head.body == BodyKind::content_length);
    CHECK(head.content_length == 42);

    const std::string zero = with_header("Content-Length: 0");
    REQUIRE(parse_req(zero, head).status == ParseStatus::complete);
    CHECK(head.body == BodyKind::none);
    CHECK(head.content_length == 0);
}

TEST_CASE("request: invalid Content-Length values are 400") {
    for (const char* v : {"+5", "-1", "5 5", "5,5", "5, 5", "0x10", "", "1e3", "5.0", "٣"}) {
        INFO("Content-Length: " << v);
        CHECK(request_error(with_header("Content-Length: "s + v)) == 400);
    }
}

TEST_CASE("request: Content-Length overflow is 400, the largest value is 413") {
    CHECK(request_error(with_header("Content-Length: 9223372036854775808")) == 400);
    CHECK(request_error(with_header("Content-Length: 99999999999999999999999")) == 400);
    CHECK(request_error(with_header("Content-Length: 9223372036854775807")) == 413);
}

TEST_CASE("request: duplicate Content-Length is 400 even when equal") {
    CHECK(request_error(with_header("Content-Length: 5\r\nContent-Length: 5")) == 400);
    CHECK(request_error(with_header("Content-Length: 5\r\ncontent-length: 6")) == 400);
}

TEST_CASE("request: Content-Length above max_body_bytes is 413") {
    ProxyLimits limits;
    limits.max_body_bytes = 1000;
    CHECK(request_error(with_header("Content-Length: 1000"), limits) == 0);
    CHECK(request_error(with_header("Content-Length: 1001"), limits) == 413);
}

TEST_CASE("request: Transfer-Encoding chunked frames the body") {
    for (const char* v : {"chunked", "Chunked", "CHUNKED", "  chunked\t"}) {
        const std::string wire = with_header("Transfer-Encoding:"s + v);
        RequestHead head;
        INFO(v);
        REQUIRE(parse_req(wire, head).status == ParseStatus::complete);
        CHECK(head.body == BodyKind::chunked);
    }
}

TEST_CASE("request: any Transfer-Encoding but exactly chunked is 400") {
    for (const char* v : {"identity", "gzip", "gzip, chunked", "chunked, chunked", "chunkedx", "chunked;q=1",
                          "", "chunked,", ",chunked", "\"chunked\"", "x-chunked"}) {
        INFO("Transfer-Encoding: " << v);
        CHECK(request_error(with_header("Transfer-Encoding: "s + v)) == 400);
    }
}

TEST_CASE("request: two Transfer-Encoding lines are 400") {
    CHECK(request_error(with_header("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked")) == 400);
}

TEST_CASE("request: Content-Length with Transfer-Encoding is 400 in either order") {
    CHECK(request_error(with_header("Content-Length: 5\r\nTransfer-Encoding: chunked")) == 400);
    CHECK(request_error(with_header("Transfer-Encoding: chunked\r\nContent-Length: 5")) == 400);
    CHECK(request_error(with_header("Transfer-Encoding: chunked\r\nContent-Length: 0")) == 400);
}

TEST_CASE("request: Transfer-Encoding in HTTP/1.0 is 400") {
    CHECK(request_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
}

TEST_CASE("request: HTTP/1.1 without Host or with two is 400") {
    CHECK(request_error("GET / HTTP/1.1\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") == 400);
    CHECK(request_error("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n") == 400);
}

TEST_CASE("request: Host must be a valid authority") {
    for (const char* h : {"example.com", "example.com:8080", "a:65535", "a:0", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8080",
                          "[2001:db8::1]", "xn--bcher-kva.example", "my_host", "a%41b"}) {
        INFO("Host: " << h);
        CHECK(request_error("GET / HTTP/1.1\r\nHost: "s + h + "\r\n\r\n") == 0);
    }
    for (const char* h : {"", "a b", "a/b", "user@a", "a?b", "a#b", "a:", ":80", "a:123456", "a:65536", "a:99999", "a:8x", "[::1",
                          "[]", "[zz::1]", "[::1]x", "a,b", "a%4", "a:80:90"}) {
        INFO("Host: " << h);
        CHECK(request_error("GET / HTTP/1.1\r\nHost: "s + h + "\r\n\r\n") == 400);
    }
}

TEST_CASE("request: Connection tokens decide keep-alive and upgrade") {
    RequestHead head;
    const std::string close = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    REQUIRE(parse_req(close, head).status == ParseStatus::complete);
    CHECK_FALSE(head.keep_alive);
    CHECK(head.connection == "close");

    const std::string up = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive , Upgrade\r\nUpgrade: websocket\r\n\r\n";
    REQUIRE(parse_req(up, head).status == ParseStatus::complete);
    CHECK(head.keep_alive);
    CHECK(head.upgrade);
    CHECK(head.connection == "keep-alive , Upgrade");

    const std::string token_only = "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n";
    REQUIRE(parse_req(token_only, head).status == ParseStatus::complete);
    CHECK_FALSE(head.upgrade); // no Upgrade header

    const std::string header_only = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n";
    REQUIRE(parse_req(header_only, head).status == ParseStatus::complete);
    CHECK_FALSE(head.upgrade); // Upgrade not listed in Connection

    // h2c is never an upgrade (h2c smuggling): the request stays plain HTTP/1.1.
    for (const char* value : {"h2c", "H2C", "websocket, h2c"}) {
        INFO("Upgrade: " << value);
        const std::string h2c =
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: "s + value +
            "\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        REQUIRE(parse_req(h2c, head).status == ParseStatus::complete);
        CHECK_FALSE(head.upgrade);
        CHECK(head.keep_alive);
    }

    const std::string both = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n";
    REQUIRE(parse_req(both, head).status == ParseStatus::complete);
    CHECK_FALSE(head.keep_alive); // close wins
}

TEST_CASE("request: several Connection lines all count") {
    const std::string wire =
        "GET / HTTP/1.1\r\nConnection: X-A\r\nHost: h\r\nX-B: 1\r\nconnection: close, X-B\r\nX-C: 2\r\n\r\n";
    RequestHead head;
    REQUIRE(parse_req(wire, head).status == ParseStatus::complete);
    CHECK_FALSE(head.keep_alive);
    CHECK(connection_has_token(head.connection, "x-a"));
    CHECK(connection_has_token(head.connection, "X-B"));
    CHECK(connection_has_token(head.connection, "close"));
    CHECK_FALSE(connection_has_token(head.connection, "Host"));
    CHECK_FALSE(connection_has_token(head.connection, "X-C"));
    CHECK(is_hop_by_hop("X-A", head.connection));
    CHECK(is_hop_by_hop("x-b", head.connection));
    CHECK_FALSE(is_hop_by_hop("Host", head.connection));
    CHECK_FALSE(is_hop_by_hop("X-C", head.connection));
}

TEST_CASE("request: Expect 100-continue, other expectations are 417") {
    RequestHead head;
    const std::string wire = with_header("Content-Length: 10\r\nExpect: 100-Continue");
    REQUIRE(parse_req(wire, head).status == ParseStatus::complete);
    CHECK(head.expect_continue);

    CHECK(request_error(with_header("Expect: something-else")) == 417);

    // RFC 9110 §10.1.1: ignored in HTTP/1.0
    const std::string v10 = "POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    REQUIRE(parse_req(v10, head).status == ParseStatus::complete);
    CHECK_FALSE(head.expect_continue);
}

TEST_CASE("request: parse state is fully reset between requests") {
    RequestHead head;
    const std::string first =
        "POST http://a.example/x HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
        "Expect: 100-continue\r\n\r\n";
    REQUIRE(parse_req(first, head).status == ParseStatus::complete);
    const auto capacity = head.fields.capacity();
    const std::string second = "GET /y HTTP/1.1\r\nHost: b\r\n\r\n";
    REQUIRE(parse_req(second, head).status == ParseStatus::complete);
    CHECK(head.fields.size() == 1);
    CHECK(head.fields.capacity() == capacity);
    CHECK(head.authority.empty());
    CHECK(head.host == "b");
    CHECK(head.body == BodyKind::none);
    CHECK(head.keep_alive);
    CHECK_FALSE(head.expect_continue);
    CHECK(head.connection.empty());
}

TEST_CASE("request: a smuggling attempt never parses as one clean request") {
    // CL.TE and TE.CL payloads, and a TE hidden by whitespace/obs-fold
    CHECK(request_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED") == 400);
    CHECK(request_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n") == 400);
    CHECK(request_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n") == 400);
    CHECK(request_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \x0b" "chunked\r\n\r\n") == 400);
    // CGI-style backends read Transfer_Encoding as Transfer-Encoding: refused (see below)
    CHECK(request_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nContent-Length: 4\r\n\r\n") == 400);
}

TEST_CASE("request: underscore twins of framing and forwarding fields are 400, other underscores are fine") {
    CHECK(request_error(with_header("Content_Length: 5")) == 400);
    CHECK(request_error(with_header("transfer_encoding: chunked")) == 400);
    CHECK(request_error(with_header("Transfer-Encoding_: chunked")) == 0); // another name: forwarded as is
    CHECK(request_error(with_header("X_Forwarded_For: 1.2.3.4")) == 400);
    CHECK(request_error(with_header("X-Forwarded_Proto: https")) == 400);
    CHECK(request_error(with_header("x_forwarded_host: evil")) == 400);
    CHECK(request_error(with_header("X_Request_ID: abc")) == 400);
    CHECK(request_error(with_header("X_Custom_Thing: 1")) == 0);
    CHECK(request_error(with_header("X-Forwarded-For: 1.2.3.4")) == 0);
}

// ------------------------------------------------------------------ responses

TEST_CASE("response: 200 with Content-Length") {
    const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\nhello world!";
    ResponseHead head;
    const auto r = parse_resp(wire, head);
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(r.head_bytes == wire.size() - 12);
    CHECK(head.status == 200);
    CHECK(head.reason == "OK");
    CHECK(head.version_minor == 1);
    CHECK(head.body == BodyKind::content_length);
    CHECK(head.content_length == 12);
    CHECK(head.has_content_length);
    CHECK(head.keep_alive);
    CHECK(head.fields.size() == 2);
}

TEST_CASE("response: chunked, Content-Length 0, and read-until-close") {
    ResponseHead head;
    const std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    REQUIRE(parse_resp(chunked, head).status == ParseStatus::complete);
    CHECK(head.body == BodyKind::chunked);
    CHECK(head.keep_alive);

    const std::string empty = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    REQUIRE(parse_resp(empty, head).status == ParseStatus::complete);
    CHECK(head.body == BodyKind::none);
    CHECK(head.keep_alive);

    const std::string until_close = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
    REQUIRE(parse_resp(until_close, head).status == ParseStatus::complete);
    CHECK(head.body == BodyKind::until_close);
    CHECK_FALSE(head.keep_alive);
}

TEST_CASE("response: 204, 304 and HEAD never have a body") {
    ResponseHead head;
    const std::string no_content = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
    REQUIRE(parse_resp(no_content, head).status == ParseStatus::complete);
    CHECK(head.body == BodyKind::none);
    CHECK(head.content_length == 0);
    CHECK_FALSE(head.keep_alive); // it announced bytes we will not read

    const std::string plain_204 = "HTTP/1.1 204 No Content\r\n\r\n";
    REQUIRE(parse_resp(plain_204, head).status == ParseStatus::complete);
    CHECK(head.body == BodyKind::none);
    CHECK(head.keep_alive);

    const std::string not_modified = "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n";
    REQUIRE(parse_resp(not_modified, head).status == ParseStatus::complete);
    CHECK(head.body == BodyKind::none);
    CHECK(head.content_length == 1234);
    CHECK(head.keep_alive);

    const std::string head_reply = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
    REQUIRE(parse_resp(head_reply, head, "HEAD").status == ParseStatus::complete);
    CHECK(head.body == BodyKind::none);
    CHECK(head.keep_alive);

    const std::string head_chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    REQUIRE(parse_resp(head_chunked, head, "HEAD").status == ParseStatus::complete);
    CHECK(head.body == BodyKind::none);
}

TEST_CASE("response: 1xx is complete with status below 200, the final head follows") {
    const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
    const std::string final_head = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n";
    const std::string wire = interim + final_head + "ok";
    ResponseHead head;
    auto r = parse_resp(wire, head, "POST");
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(head.status == 100);
    CHECK(head.body == BodyKind::none);
    CHECK(r.head_bytes == interim.size());
    r = parse_resp(std::string_view(wire).substr(r.head_bytes), head, "POST");
    REQUIRE(r.status == ParseStatus::complete);
    CHECK(head.status == 201);
    CHECK(head.content_length == 2);

    const std::string switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    REQUIRE(parse_resp(switching, head).status == ParseStatus::complete);
    CHECK(head.status == 101);
    CHECK(head.body == BodyKind::none);
    CHECK(connection_has_token(head.connection, "upgrade"));
}

TEST_CASE("response: ambiguous framing is 502") {
    CHECK(response_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n") == 502);
}

TEST_CASE("response: bad status lines are 502") {
    for (const char* line : {"HTTP/1.1 20 OK", "HTTP/1.1 200OK", "HTTP/2 200 OK", "HTTP/2.0 200 OK", "http/1.1 200 OK",
                             "HTTP/1.1  200 OK", "HTTP/1.1 099 Early", "HTTP/1.1 600 Nope", "HTTP/1.1 2x0 OK",
                             "HTTP/1.2 200 OK", "ICY 200 OK", "HTTP/1.1 200 O\x01K"}) {
        INFO(line);
        CHECK(response_error(line + "\r\nContent-Length: 0\r\n\r\n"s) == 502);
    }
}

TEST_CASE("response: an empty reason phrase is fine, with or without the SP") {
    ResponseHead head;
    const std::string no_sp = "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n";
    REQUIRE(parse_resp(no_sp, head).status == ParseStatus::complete);
    CHECK(head.status == 200);
    CHECK(head.reason.empty());
    const std::string sp = "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n";
    REQUIRE(parse_resp(sp, head).status == ParseStatus::complete);
    CHECK(head.status == 404);
    CHECK(head.reason.empty());
}

TEST_CASE("response: header syntax errors and bare CR/LF are 502") {
    CHECK(response_error("HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\r\nX-A : one\r\nContent-Length: 0\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n") == 502);
    CHECK(response_error("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"s) == 502);
    CHECK(response_error("\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") == 502);
}

TEST_CASE("response: incomplete, and beyond max_bytes") {
    ResponseHead head;
    const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for (std::size_t k = 0; k < wire.size(); ++k) {
        INFO("prefix " << k);
        REQUIRE(parse_resp(std::string_view(wire).substr(0, k), head).status == ParseStatus::incomplete);
    }
    REQUIRE(parse_resp(wire, head, "GET", wire.size()).status == ParseStatus::complete);
    const auto r = parse_resp(wire, head, "GET", wire.size() - 1);
    REQUIRE(r.status == ParseStatus::error);
    CHECK(r.error_status == 502);
    const std::string endless = "HTTP/1.1 200 OK\r\nX-Pad: " + std::string(100, 'x');
    CHECK(parse_resp(endless, head, "GET", 64).status == ParseStatus::error);
}

TEST_CASE("response: keep-alive follows version and Connection") {
    ResponseHead head;
    const std::string v10 = "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n";
    REQUIRE(parse_resp(v10, head).status == ParseStatus::complete);
    CHECK_FALSE(head.keep_alive);
    const std::string v10_ka = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n";
    REQUIRE(parse_resp(v10_ka, head).status == ParseStatus::complete);
    CHECK(head.keep_alive);
    const std::string v11_close = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n";
    REQUIRE(parse_resp(v11_close, head).status == ParseStatus::complete);
    CHECK_FALSE(head.keep_alive);
    CHECK(head.connection == "close");
}

// ------------------------------------------------------------------ helpers

TEST_CASE("is_hop_by_hop: fixed names and tokens listed in Connection") {
    for (const char* n : {"Connection", "keep-alive", "PROXY-CONNECTION", "TE", "Trailer", "transfer-encoding",
                          "Upgrade", "Content-Length"}) {
        INFO(n);
        CHECK(is_hop_by_hop(n, ""));
    }
    for (const char* n : {"Host", "Content-Type", "Trailers", "X-Forwarded-For", "T", "Connections"}) {
        INFO(n);
        CHECK_FALSE(is_hop_by_hop(n, ""));
    }
    CHECK(is_hop_by_hop("X-Secret", "close, x-secret"));
    CHECK(is_hop_by_hop("x-other", " X-Secret ,\tX-Other "));
    CHECK_FALSE(is_hop_by_hop("X-Secret2", "close, x-secret"));
    CHECK_FALSE(is_hop_by_hop("X-Secret", "close, , "));
}

TEST_CASE("iequals is ASCII case-insensitive") {
    CHECK(iequals("Content-Length", "content-length"));
    CHECK(iequals("", ""));
    CHECK_FALSE(iequals("abc", "abd"));
    CHECK_FALSE(iequals("abc", "abcd"));
    CHECK_FALSE(iequals("@", "`"));
    CHECK_FALSE(iequals("[", "{"));
}
