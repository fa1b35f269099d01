// Strict incremental decoder for the chunked transfer coding (RFC 9112 §7.1).
// Framing bytes go through a byte-at-a-time state machine (they are few); chunk
// data is handed out as views of the input, never copied.
#include "proxy/http_head.hpp"

namespace releasectl::proxy {
namespace {

constexpr std::size_t max_size_line_bytes = 4096;    // chunk-size + extensions
constexpr std::size_t max_trailer_line_bytes = 8192; // one trailer field line
constexpr std::size_t max_trailer_bytes = 16 * 1024; // whole trailer section
constexpr std::size_t max_size_digits = 16;          // 16 hex digits fill a uint64

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_tchar(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~': return true;
    default: return false;
    }
}

// HTAB / SP / VCHAR / obs-text
bool is_field_byte(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
bool is_qdtext(char c) noexcept { return is_field_byte(c) && c != '"' && c != '\\'; }

} // namespace

bool ChunkedDecoder::in_size_line(State s) noexcept {
    switch (s) {
    case State::size: case State::ext: case State::ext_name: case State::ext_value:
    case State::ext_token: case State::ext_quoted: case State::ext_quoted_pair:
    case State::ext_after_quoted: case State::size_lf: return true;
    default: return false;
    }
}

bool ChunkedDecoder::in_trailers(State s) noexcept {
    switch (s) {
    case State::trailer_start: case State::trailer_name: case State::trailer_line:
    case State::trailer_lf: case State::final_lf: return true;
    default: return false;
    }
}

ChunkedDecoder::Step ChunkedDecoder::next(std::string_view input) {
    Step step;
    if (state_ == State::done) {
        step.done = true;
        return step;
    }
    if (state_ == State::error) {
        step.error = true;
        return step;
    }
    if (state_ == State::data) {
        const auto n = remaining_ < input.size() ? static_cast<std::size_t>(remaining_) : input.size();
        remaining_ -= n;
        step.data = input.substr(0, n);
        step.consumed = n;
        if (remaining_ == 0) state_ = State::data_cr;
        return step;
    }

    std::size_t i = 0;
    for (; i < input.size(); ++i) {
        const char c = input[i];
        // Bound the framing lines we read without making progress.
        bool ok = true;
        if (in_size_line(state_)) ok = ++line_bytes_ <= max_size_line_bytes;
        else if (in_trailers(state_))
            ok = ++trailer_bytes_ <= max_trailer_bytes && ++line_bytes_ <= max_trailer_line_bytes;
        if (ok) switch (state_) {
        case State::size:
            if (const int v = hex_value(c); v >= 0) {
                if (size_digits_ == max_size_digits) {
                    ok = false; // a 17th digit could overflow
                } else {
                    remaining_ = remaining_ * 16 + static_cast<std::uint64_t>(v);
                    ++size_digits_;
                }
            } else if (size_digits_ > 0 && c == ';') {
                state_ = State::ext;
            } else if (size_digits_ > 0 && c == '\r') {
                state_ = State::size_lf;
            } else {
                ok = false; // no digits, whitespace, bare LF, junk
            }
            break;
        case State::ext: // first character of an extension name
            if (is_tchar(c)) state_ = State::ext_name;
            else ok = false;
            break;
        case State::ext_name:
            if (c == '=') state_ = State::ext_value;
            else if (c == ';') state_ = State::ext;
            else if (c == '\r') state_ = State::size_lf;
            else ok = is_tchar(c);
            break;
        case State::ext_value:
            if (c == '"') state_ = State::ext_quoted;
            else if (is_tchar(c)) state_ = State::ext_token;
            else ok = false;
            break;
        case State::ext_token:
            if (c == ';') state_ = State::ext;
            else if (c == '\r') state_ = State::size_lf;
            else ok = is_tchar(c);
            break;
        case State::ext_quoted:
            if (c == '"') state_ = State::ext_after_quoted;
            else if (c == '\\') state_ = State::ext_quoted_pair;
            else ok = is_qdtext(c);
            break;
        case State::ext_quoted_pair:
            ok = is_field_byte(c);
            state_ = State::ext_quoted;
            break;
        case State::ext_after_quoted:
            if (c == ';') state_ = State::ext;
            else if (c == '\r') state_ = State::size_lf;
            else ok = false;
            break;
        case State::size_lf:
            if (c != '\n') {
                ok = false;
            } else if (remaining_ == 0) {
                state_ = State::trailer_start; // last-chunk
                line_bytes_ = 0;
            } else {
                state_ = State::data;
            }
            break;
        case State::data_cr:
            ok = c == '\r';
            state_ = State::data_lf;
            break;
        case State::data_lf:
            ok = c == '\n';
            state_ = State::size;
            size_digits_ = 0;
            line_bytes_ = 0;
            break;
        case State::trailer_start:
            if (c == '\r') state_ = State::final_lf;
            else if (is_tchar(c)) state_ = State::trailer_name; // SP/HTAB here would be obs-fold
            else ok = false;
            break;
        case State::trailer_name:
            if (c == ':') state_ = State::trailer_line;
            else ok = is_tchar(c);
            break;
        case State::trailer_line: // field value
            if (c == '\r') state_ = State::trailer_lf;
            else ok = is_field_byte(c);
            break;
        case State::trailer_lf:
            ok = c == '\n';
            state_ = State::trailer_start;
            line_bytes_ = 0;
            break;
        case State::final_lf:
            ok = c == '\n';
            state_ = State::done;
            break;
        case State::data:
        case State::done:
        case State::error:
            break; // unreachable: the loop stops before
        }

        if (!ok) {
            state_ = State::error;
            step.error = true;
            step.consumed = i;
            return step;
        }
        if (state_ == State::data || state_ == State::done) {
            ++i;
            break;
        }
    }
    step.consumed = i;
    step.done = state_ == State::done;
    return step;
}

} // namespace releasectl::proxy
