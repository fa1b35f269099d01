#pragma once
// ACME HTTP-01 answers (RFC 8555 §8.3): the controller's ACME client publishes
// token -> key authorization while an order is pending; plain listeners answer
// GET /.well-known/acme-challenge/<token> from it (other tokens go to the app).
#include <string>
#include <string_view>
#include <vector>

namespace releasectl::proxy {

struct AcmeChallenges {
    struct Entry {
        std::string token;
        std::string key_authorization;
    };
    std::vector<Entry> entries; // a handful at most: linear search

    const std::string* find(std::string_view token) const {
        for (const auto& entry : entries)
            if (entry.token == token) return &entry.key_authorization;
        return nullptr;
    }
};

} // namespace releasectl::proxy
