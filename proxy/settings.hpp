#pragma once
// Plain settings the data plane is built from. The controller fills these from
// TOML; proxy/ itself never sees a config file.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace releasectl::proxy {

using Duration = std::chrono::milliseconds;

// Where a slot's app listens: TCP host:port or a Unix socket path.
struct UpstreamAddress {
    enum class Kind { tcp, unix_socket };
    Kind kind = Kind::tcp;
    std::string host;       // tcp: numeric address or "localhost"
    std::uint16_t port = 0; // tcp
    std::string path;       // unix
    bool tls = false;       // tcp: "https://" (the slot's UpstreamTlsClient says how)

    // "127.0.0.1:9001", "[::1]:9001", "localhost:9001", "http://127.0.0.1:9001",
    // "https://127.0.0.1:9443" (port 443 when omitted), "unix:/run/app.sock".
    // On failure returns nullopt and writes a human sentence into *error.
    static std::optional<UpstreamAddress> parse(std::string_view text, std::string* error);
    std::string to_string() const;
    bool operator==(const UpstreamAddress&) const = default;
};

struct ListenAddress {
    std::string host = "0.0.0.0";
    std::uint16_t port = 80;
    static std::optional<ListenAddress> parse(std::string_view text, std::string* error);
    std::string to_string() const;
    bool operator==(const ListenAddress&) const = default;
};

struct ProxyLimits {
    std::size_t max_uri_bytes = 8 * 1024;           // 414 above
    std::size_t max_header_bytes = 32 * 1024;       // whole request head; 431 above
    std::size_t max_header_count = 100;             // 431 above
    std::uint64_t max_body_bytes = 1024ull * 1024 * 1024; // 413 above (1 GiB)
    std::size_t max_response_header_bytes = 64 * 1024;    // upstream head; 502 above
};

struct ProxyTimeouts {
    Duration request_head{10'000};       // first byte .. end of head (slowloris)
    Duration request_body{300'000};      // whole request body (slow body)
    Duration keepalive_idle{75'000};     // idle client connection between requests
    Duration upstream_connect{5'000};
    Duration upstream_response{60'000};  // request sent .. response head received
    Duration upstream_read{300'000};     // idle gap while streaming a response
    Duration upstream_idle{30'000};      // pooled idle upstream connection lifetime
    Duration tunnel_idle{3'600'000};     // WebSocket / Upgrade tunnels
    Duration drain{30'000};              // SIGTERM / slot drain
    Duration client_write{60'000};       // client not reading what we send
    Duration tls_handshake{10'000};      // TCP accepted .. TLS handshake done
};

// One certificate the HTTPS listeners serve; the names it answers to come
// from its subjectAltName DNS entries.
struct TlsCertificateFiles {
    std::string cert_path; // PEM: leaf first, then the intermediates (full chain)
    std::string key_path;  // PEM private key, not readable by other users
    bool operator==(const TlsCertificateFiles&) const = default;
};

// A response header the proxy adds when the app did not send it itself.
struct SecurityHeader {
    std::string name;
    std::string value;
    bool https_only = false; // Strict-Transport-Security means nothing over plain HTTP
    bool operator==(const SecurityHeader&) const = default;
};

// Strict-Transport-Security: max-age=31536000 (HTTPS only),
// X-Content-Type-Options: nosniff, X-Frame-Options: DENY.
std::vector<SecurityHeader> default_security_headers();

struct ProxySettings {
    std::vector<ListenAddress> listen{ListenAddress{}};
    unsigned workers = 0; // 0 = one per core
    ProxyLimits limits;
    ProxyTimeouts timeouts;
    std::size_t upstream_max_idle_per_slot = 128; // per worker
    // Client addresses (CIDR or plain address) whose X-Forwarded-For we extend;
    // from anyone else the header is replaced.
    std::vector<std::string> trusted_proxies;
    bool access_log = true;
    std::string access_log_path; // empty = stdout
    // TLS termination: HTTPS listeners and the certificates they serve (the
    // first one is the default for clients without SNI or with an unknown name).
    std::vector<ListenAddress> listen_tls;
    std::vector<TlsCertificateFiles> certificates;
    // Plain listeners answer 308 to https:// (except ACME HTTP-01 challenges).
    bool redirect_http = false;
    std::vector<SecurityHeader> security_headers = default_security_headers();
};

// "250ms", "10s", "5m", "1h", "1500" (ms). nullopt on garbage.
std::optional<Duration> parse_duration(std::string_view text);
// "64KiB", "10MiB", "1GiB", "1048576", "10MB"
std::optional<std::uint64_t> parse_size(std::string_view text);
std::string format_duration(Duration d);

} // namespace releasectl::proxy
