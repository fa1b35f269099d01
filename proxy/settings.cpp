#include "settings.hpp"

#include <charconv>
#include <cmath>

namespace releasectl::proxy {
namespace {

bool parse_port(std::string_view text, std::uint16_t& port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value == 0 || value > 65535) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
}

// Splits "host:port" / "[v6]:port"; host keeps no brackets.
bool split_host_port(std::string_view text, std::string& host, std::uint16_t& port, std::string* error) {
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            if (error) *error = "expected [ipv6]:port";
            return false;
        }
        host = std::string(text.substr(1, close - 1));
        port_text = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            if (error) *error = "expected host:port";
            return false;
        }
        host = std::string(text.substr(0, colon));
        port_text = text.substr(colon + 1);
    }
    if (host.empty()) {
        if (error) *error = "missing host in '" + std::string(text) + "'";
        return false;
    }
    if (!parse_port(port_text, port)) {
        if (error) *error = "invalid port in '" + std::string(text) + "' (1-65535)";
        return false;
    }
    return true;
}

} // namespace

std::optional<UpstreamAddress> UpstreamAddress::parse(std::string_view text, std::string* error) {
    UpstreamAddress address;
    if (text.starts_with("unix:")) {
        address.kind = Kind::unix_socket;
        address.path = std::string(text.substr(5));
        if (address.path.empty() || address.path.front() != '/') {
            if (error) *error = "unix socket path must be absolute: '" + std::string(text) + "'";
            return std::nullopt;
        }
        if (address.path.size() > 107) {
            if (error) *error = "unix socket path longer than 107 bytes";
            return std::nullopt;
        }
        return address;
    }
    std::string_view default_port;
    if (text.starts_with("http://")) {
        text.remove_prefix(7);
        default_port = "80";
    } else if (text.starts_with("https://")) {
        text.remove_prefix(8);
        default_port = "443";
        address.tls = true;
    } else if (text.find("://") != std::string_view::npos) {
        if (error) *error = "only http:// and https:// upstreams are supported";
        return std::nullopt;
    }
    if (!default_port.empty() && !text.empty() && text.back() == '/') text.remove_suffix(1);
    if (!default_port.empty() && text.find('/') != std::string_view::npos) {
        if (error) *error = "an upstream is host:port without a path";
        return std::nullopt;
    }
    // "https://app.internal" means port 443, as in a browser.
    std::string with_port;
    bool has_port = !text.empty() && (text.front() == '[' ? text.find("]:") != std::string_view::npos
                                                          : text.find(':') != std::string_view::npos);
    if (!default_port.empty() && !has_port) {
        with_port = std::string(text) + ":" + std::string(default_port);
        text = with_port;
    }
    if (!split_host_port(text, address.host, address.port, error)) return std::nullopt;
    return address;
}

std::string UpstreamAddress::to_string() const {
    if (kind == Kind::unix_socket) return "unix:" + path;
    std::string scheme = tls ? "https://" : "";
    if (host.find(':') != std::string::npos) return scheme + "[" + host + "]:" + std::to_string(port);
    return scheme + host + ":" + std::to_string(port);
}

std::optional<ListenAddress> ListenAddress::parse(std::string_view text, std::string* error) {
    ListenAddress address;
    if (!split_host_port(text, address.host, address.port, error)) return std::nullopt;
    return address;
}

std::string ListenAddress::to_string() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

std::optional<Duration> parse_duration(std::string_view text) {
    if (text.empty()) return std::nullopt;
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || value < 0 || !std::isfinite(value)) return std::nullopt;
    std::string_view unit(end, text.data() + text.size() - end);
    double ms_per_unit = 0;
    if (unit.empty() || unit == "ms") ms_per_unit = 1;
    else if (unit == "s") ms_per_unit = 1000;
    else if (unit == "m") ms_per_unit = 60'000;
    else if (unit == "h") ms_per_unit = 3'600'000;
    else if (unit == "us") ms_per_unit = 0.001;
    else return std::nullopt;
    return Duration(static_cast<std::int64_t>(std::llround(value * ms_per_unit)));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    if (text.empty()) return std::nullopt;
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{}) return std::nullopt;
    std::string_view unit(end, text.data() + text.size() - end);
    std::uint64_t factor = 0;
    if (unit.empty() || unit == "B") factor = 1;
    else if (unit == "KiB" || unit == "k" || unit == "K") factor = 1024;
    else if (unit == "MiB" || unit == "m" || unit == "M") factor = 1024ull * 1024;
    else if (unit == "GiB" || unit == "g" || unit == "G") factor = 1024ull * 1024 * 1024;
    else if (unit == "KB") factor = 1000;
    else if (unit == "MB") factor = 1000ull * 1000;
    else if (unit == "GB") factor = 1000ull * 1000 * 1000;
    else return std::nullopt;
    if (value > UINT64_MAX / factor) return std::nullopt;
    return value * factor;
}

std::vector<SecurityHeader> default_security_headers() {
    return {
        {"Strict-Transport-Security", "max-age=31536000", true},
        {"X-Content-Type-Options", "nosniff", false},
        {"X-Frame-Options", "DENY", false},
    };
}

std::string format_duration(Duration d) {
    auto ms = d.count();
    if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0 && ms != 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

} // namespace releasectl::proxy
