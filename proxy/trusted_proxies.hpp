#pragma once
// Which client addresses may hand us an X-Forwarded-For we extend (CIDR list).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace releasectl::proxy {

class TrustedProxies {
public:
    // Entries: "10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8". Returns an error sentence or "".
    std::string add(std::string_view cidr);
    bool contains(std::string_view address) const;
    bool empty() const { return ranges_.empty(); }

private:
    struct Range { std::array<std::uint8_t, 16> bytes{}; unsigned prefix = 0; bool v6 = false; };
    std::vector<Range> ranges_;
};

} // namespace releasectl::proxy
