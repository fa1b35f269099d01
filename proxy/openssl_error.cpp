#include "openssl_error.hpp"

#include <openssl/err.h>

namespace releasectl::proxy {

std::string openssl_error() {
    unsigned long code = ERR_peek_last_error();
    std::string text;
    if (code != 0) {
        const char* reason = ERR_reason_error_string(code);
        char buffer[256];
        ERR_error_string_n(code, buffer, sizeof buffer);
        text = reason ? reason : buffer;
    }
    ERR_clear_error();
    return text.empty() ? "unknown OpenSSL error" : text;
}

} // namespace releasectl::proxy
