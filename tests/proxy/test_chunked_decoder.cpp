// Strict chunked decoding: sizes, CRLFs, extensions, trailers, and the Step
// contract (framing or data per step, zero-copy views, loop until consumed == 0).
#include "proxy/http_head.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

using namespace releasectl::proxy;
using namespace std::string_literals;

namespace {

struct Decoded {
    std::string data;
    bool done = false;
    bool error = false;
    std::size_t consumed = 0; // bytes of the wire the decoder used
};

// Feeds `wire` in pieces cut at `cuts` (ascending), the way a session does: bytes
// not consumed stay buffered and are offered again together with the next piece.
Decoded decode_pieces(std::string_view wire, const std::vector<std::size_t>& cuts) {
    ChunkedDecoder decoder;
    Decoded out;
    std::string buffer;
    std::size_t fed = 0;
    auto feed_until = [&](std::size_t end) {
        buffer.append(wire.substr(fed, end - fed));
        fed = end;
        std::string_view input = buffer;
        for (int guard = 0; guard < 100000; ++guard) {
            const auto step = decoder.next(input);
            if (!step.data.empty()) {
                // zero-copy, and a data step carries no framing
                REQUIRE(step.data.data() == input.data());
                REQUIRE(step.consumed == step.data.size());
                out.data.append(step.data);
            }
            input.remove_prefix(step.consumed);
            out.consumed += step.consumed;
            if (step.error) out.error = true;
            if (step.done) out.done = true;
            if (step.consumed == 0 || step.done || step.error) break;
        }
        buffer.erase(0, buffer.size() - input.size());
    };
    for (std::size_t cut : cuts) {
        feed_until(cut);
        if (out.done || out.error) return out;
    }
    feed_until(wire.size());
    return out;
}

Decoded decode(std::string_view wire) { return decode_pieces(wire, {}); }

bool rejects(std::string_view wire) { return decode(wire).error; }

const std::string multi_chunk_body =
    "5\r\nhello\r\n"
    "1;ext=1\r\n \r\n"
    "A\r\n0123456789\r\n"
    "1a;a=\"q \\\" x\";b\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    "0\r\nX-Checksum: abc\r\nX-Other:\tv\r\n\r\n";
const std::string multi_chunk_data = "hello 0123456789abcdefghijklmnopqrstuvwxyz";

} // namespace

TEST_CASE("chunked: a single chunk and the last chunk") {
    const auto d = decode("5\r\nhello\r\n0\r\n\r\n");
    CHECK(d.data == "hello");
    CHECK(d.done);
    CHECK_FALSE(d.error);
    CHECK(d.consumed == 15);
}

TEST_CASE("chunked: an empty body is just the last chunk") {
    const auto d = decode("0\r\n\r\n");
    CHECK(d.data.empty());
    CHECK(d.done);
    CHECK(d.consumed == 5);
}

TEST_CASE("chunked: steps alternate framing and data views") {
    ChunkedDecoder decoder;
    std::string_view in = "3\r\nabc\r\n0\r\n\r\n";
    auto s = decoder.next(in);
    CHECK(s.consumed == 3); // "3\r\n"
    CHECK(s.data.empty());
    in.remove_prefix(s.consumed);
    s = decoder.next(in);
    CHECK(s.consumed == 3);
    CHECK(s.data == "abc");
    CHECK(s.data.data() == in.data());
    in.remove_prefix(s.consumed);
    s = decoder.next(in);
    CHECK(s.consumed == 7); // "\r\n0\r\n\r\n"
    CHECK(s.done);
    CHECK(decoder.done());
    in.remove_prefix(s.consumed);
    CHECK(in.empty());
}

TEST_CASE("chunked: consumed == 0 means more input is needed") {
    ChunkedDecoder decoder;
    auto s = decoder.next("");
    CHECK(s.consumed == 0);
    CHECK_FALSE(s.done);
    CHECK_FALSE(s.error);
    s = decoder.next("4");
    CHECK(s.consumed == 1);
    s = decoder.next("");
    CHECK(s.consumed == 0);
    s = decoder.next("\r\nab");
    CHECK(s.consumed == 2);
    s = decoder.next("ab");
    CHECK(s.data == "ab");
    s = decoder.next("");
    CHECK(s.consumed == 0);
    CHECK_FALSE(s.error);
}

TEST_CASE("chunked: multi-chunk body with extensions and trailers") {
    const auto d = decode(multi_chunk_body);
    CHECK(d.data == multi_chunk_data);
    CHECK(d.done);
    CHECK_FALSE(d.error);
    CHECK(d.consumed == multi_chunk_body.size());
}

TEST_CASE("chunked: split at every byte position gives identical data") {
    for (std::size_t cut = 0; cut <= multi_chunk_body.size(); ++cut) {
        INFO("cut at " << cut);
        const auto d = decode_pieces(multi_chunk_body, {cut});
        REQUIRE(d.done);
        REQUIRE_FALSE(d.error);
        REQUIRE(d.data == multi_chunk_data);
        REQUIRE(d.consumed == multi_chunk_body.size());
    }
}

TEST_CASE("chunked: every pair of split positions gives identical data") {
    const std::size_t n = multi_chunk_body.size();
    for (std::size_t a = 0; a <= n; a += 3)
        for (std::size_t b = a; b <= n; b += 2) {
            const auto d = decode_pieces(multi_chunk_body, {a, b});
            REQUIRE(d.done);
            REQUIRE(d.data == multi_chunk_data);
        }
}

TEST_CASE("chunked: fed one byte at a time") {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < multi_chunk_body.size(); ++i) cuts.push_back(i);
    const auto d = decode_pieces(multi_chunk_body, cuts);
    CHECK(d.done);
    CHECK(d.data == multi_chunk_data);
}

TEST_CASE("chunked: bytes after the body (a pipelined request) are not consumed") {
    const std::string wire = "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    const auto d = decode(wire);
    CHECK(d.done);
    CHECK(d.consumed == wire.size() - 16);
}

TEST_CASE("chunked: hex digits in either case") {
    CHECK(decode("a\r\n0123456789\r\n0\r\n\r\n").data == "0123456789");
    CHECK(decode("A\r\n0123456789\r\n0\r\n\r\n").data == "0123456789");
    CHECK(decode("00F\r\n" + std::string(15, 'x') + "\r\n0\r\n\r\n").data.size() == 15);
}

TEST_CASE("chunked: a large chunk arrives as several zero-copy data steps") {
    const std::string payload(70000, 'z');
    const std::string wire = "11170\r\n" + payload + "\r\n0\r\n\r\n";
    std::vector<std::size_t> cuts;
    for (std::size_t c = 1000; c < wire.size(); c += 4096) cuts.push_back(c);
    const auto d = decode_pieces(wire, cuts);
    CHECK(d.done);
    CHECK(d.data == payload);
}

TEST_CASE("chunked: 16 hex digits are accepted, a 17th is an error") {
    ChunkedDecoder decoder;
    const auto s = decoder.next("ffffffffffffffff\r\n");
    CHECK_FALSE(s.error);
    CHECK(s.consumed == 18); // now expecting 2^64-1 data bytes
    CHECK(rejects("1ffffffffffffffff\r\n"));
    CHECK(rejects("00000000000000001\r\nx\r\n0\r\n\r\n"));
    CHECK(rejects("10000000000000000\r\n"));
}

TEST_CASE("chunked: invalid sizes") {
    for (const char* wire : {"\r\nhello\r\n0\r\n\r\n", "x\r\n", "-1\r\n", "+5\r\nhello\r\n", "0x5\r\nhello\r\n",
                             ";ext\r\n", "5g\r\nhello\r\n", "\xb5\r\n"}) {
        INFO(wire);
        CHECK(rejects(wire));
    }
}

TEST_CASE("chunked: whitespace in the size line is an error") {
    CHECK(rejects("5 \r\nhello\r\n0\r\n\r\n"));
    CHECK(rejects(" 5\r\nhello\r\n0\r\n\r\n"));
    CHECK(rejects("5\t\r\nhello\r\n0\r\n\r\n"));
    CHECK(rejects("5 ;a=b\r\nhello\r\n0\r\n\r\n"));
    CHECK(rejects("0 \r\n\r\n"));
}

TEST_CASE("chunked: bare LF or CR after the size is an error") {
    CHECK(rejects("5\nhello\r\n0\r\n\r\n"));
    CHECK(rejects("5\rhello\r\n0\r\n\r\n"));
    CHECK(rejects("5\r\rhello\r\n0\r\n\r\n"));
    CHECK(rejects("5;a=b\nhello\r\n0\r\n\r\n"));
}

TEST_CASE("chunked: data must be followed by exactly CRLF") {
    CHECK(rejects("5\r\nhelloX\r\n0\r\n\r\n"));  // chunk longer than announced
    CHECK(rejects("5\r\nhello\n0\r\n\r\n"));     // bare LF
    CHECK(rejects("5\r\nhello\rX0\r\n\r\n"));    // bare CR
    CHECK(rejects("5\r\nhello0\r\n\r\n"));       // no CRLF at all
    CHECK(rejects("5\r\nhell\r\n0\r\n\r\n"));    // chunk shorter: "\r" is data, then "\n0" is not CRLF
}

TEST_CASE("chunked: valid chunk extensions are tolerated") {
    for (const char* size_line : {"5;foo", "5;foo=bar", "5;a=b;c=d", "5;a=\"quoted value\"", "5;a=\"esc\\\"aped\"",
                                  "5;a=\"\";b", "5;name=\"tab\tin\""}) {
        INFO(size_line);
        const auto d = decode(size_line + "\r\nhello\r\n0\r\n\r\n"s);
        CHECK_FALSE(d.error);
        CHECK(d.done);
        CHECK(d.data == "hello");
    }
    CHECK(decode("0;last=1\r\n\r\n").done);
}

TEST_CASE("chunked: malformed chunk extensions are errors") {
    for (const char* size_line : {"5;", "5;;a", "5; foo", "5;foo =bar", "5;foo= bar", "5;foo=", "5;=bar",
                                  "5;a=\"unterminated", "5;a=\"x\"y", "5;a=b c", "5;a=\"\x01\"", "5;a=b,c"}) {
        INFO(size_line);
        CHECK(rejects(size_line + "\r\nhello\r\n0\r\n\r\n"s));
    }
}

TEST_CASE("chunked: a size line longer than 4096 bytes is an error") {
    const std::string ok_ext = "5;a=" + std::string(4000, 'v');
    CHECK(decode(ok_ext + "\r\nhello\r\n0\r\n\r\n").done);
    const std::string long_ext = "5;a=" + std::string(5000, 'v');
    CHECK(rejects(long_ext + "\r\nhello\r\n0\r\n\r\n"));
    // also when the bytes trickle in: no unbounded buffering of one line
    ChunkedDecoder decoder;
    auto s = decoder.next("5;a=");
    bool error = s.error;
    for (int i = 0; i < 5000 && !error; ++i) error = decoder.next("v").error;
    CHECK(error);
}

TEST_CASE("chunked: trailers are read and discarded") {
    const auto d = decode("3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum:  1 2 3 \r\nX-Empty:\r\n\r\n");
    CHECK(d.done);
    CHECK(d.data == "abc");
}

TEST_CASE("chunked: malformed trailers are errors") {
    CHECK(rejects("0\r\n folded: x\r\n\r\n"));
    CHECK(rejects("0\r\nX-A: 1\r\n\tcontinued\r\n\r\n"));
    CHECK(rejects("0\r\nNoColon\r\n\r\n"));
    CHECK(rejects("0\r\nX-A : 1\r\n\r\n"));
    CHECK(rejects("0\r\n: empty-name\r\n\r\n"));
    CHECK(rejects("0\r\nX-A: 1\n\r\n"));
    CHECK(rejects("0\r\nX-A: a\rb\r\n\r\n"));
    CHECK(rejects("0\r\nX-A: a\0b\r\n\r\n"s));
}

TEST_CASE("chunked: trailer section larger than 16 KiB is an error") {
    std::string trailers;
    for (int i = 0; i < 20; ++i) trailers += "X-T" + std::to_string(i) + ": " + std::string(1000, 't') + "\r\n";
    CHECK(rejects("0\r\n" + trailers + "\r\n"));
    std::string small;
    for (int i = 0; i < 10; ++i) small += "X-T" + std::to_string(i) + ": " + std::string(1000, 't') + "\r\n";
    CHECK(decode("0\r\n" + small + "\r\n").done);
    // one endless trailer line is bounded too
    CHECK(rejects("0\r\nX-Big: " + std::string(9000, 'b') + "\r\n\r\n"));
}

TEST_CASE("chunked: the final CRLF must be exact") {
    CHECK(rejects("0\r\n\n"));
    CHECK(rejects("0\r\n\rX"));
    CHECK(rejects("0\r\n\r\r\n"));
    CHECK(rejects("0\n\r\n"));
}

TEST_CASE("chunked: done and error are sticky; reset starts over") {
    ChunkedDecoder decoder;
    auto s = decoder.next("0\r\n\r\nmore");
    CHECK(s.done);
    CHECK(s.consumed == 5);
    s = decoder.next("more");
    CHECK(s.done);
    CHECK(s.consumed == 0);

    decoder.reset();
    CHECK_FALSE(decoder.done());
    s = decoder.next("zz\r\n");
    CHECK(s.error);
    s = decoder.next("5\r\nhello\r\n0\r\n\r\n");
    CHECK(s.error);
    CHECK(s.consumed == 0);

    decoder.reset();
    s = decoder.next("1\r\n");
    CHECK_FALSE(s.error);
    s = decoder.next("x");
    CHECK(s.data == "x");
}
