#include "trusted_proxies.hpp"

#include <arpa/inet.h>
#include <charconv>

namespace releasectl::proxy {
namespace {

bool parse_ip(std::string_view text, std::array<std::uint8_t, 16>& out, bool& v6) {
    std::string s(text);
    if (s.starts_with("::ffff:") && s.find('.') != std::string::npos) s = s.substr(7); // v4-mapped
    out.fill(0);
    if (inet_pton(AF_INET, s.c_str(), out.data()) == 1) { v6 = false; return true; }
    if (inet_pton(AF_INET6, s.c_str(), out.data()) == 1) { v6 = true; return true; }
    return false;
}

} // namespace

std::string TrustedProxies::add(std::string_view cidr) {
    Range range;
    auto slash = cidr.find('/');
    if (!parse_ip(cidr.substr(0, slash), range.bytes, range.v6))
        return "invalid address in trusted proxy '" + std::string(cidr) + "'";
    unsigned max_prefix = range.v6 ? 128 : 32;
    range.prefix = max_prefix;
    if (slash != std::string_view::npos) {
        auto bits = cidr.substr(slash + 1);
        auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), range.prefix);
        if (ec != std::errc{} || end != bits.data() + bits.size() || range.prefix > max_prefix)
            return "invalid prefix length in trusted proxy '" + std::string(cidr) + "'";
    }
    ranges_.push_back(range);
    return {};
}

bool TrustedProxies::contains(std::string_view address) const {
    std::array<std::uint8_t, 16> bytes{};
    bool v6 = false;
    if (!parse_ip(address, bytes, v6)) return false;
    for (const auto& range : ranges_) {
        if (range.v6 != v6) continue;
        unsigned full = range.prefix / 8, rest = range.prefix % 8;
        bool match = true;
        for (unsigned i = 0; i < full && match; ++i) match = bytes[i] == range.bytes[i];
        if (match && rest) {
            std::uint8_t mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
            match = (bytes[full] & mask) == (range.bytes[full] & mask);
        }
        if (match) return true;
    }
    return false;
}

} // namespace releasectl::proxy
