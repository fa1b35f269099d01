#pragma once
// TLS from the proxy to an upstream (`upstream = "https://..."`): one client
// context per slot, certificate and name verified by default, SNI sent for
// host names. Plain OpenSSL (no Asio): the proxy's pools and the controller's
// health checks both start their connections from here. OpenSSL types stay
// out of this header (ssl_ctx_st is SSL_CTX, ssl_st is SSL).
#include <memory>
#include <string>
#include <string_view>

struct ssl_ctx_st;
struct ssl_st;
struct ssl_session_st;

namespace releasectl::proxy {

struct UpstreamTlsSettings {
    bool verify = true;       // certificate chain and name; off only for testing
    std::string ca_bundle;    // PEM file of CAs to trust; empty: the system's store
    std::string server_name;  // name to send (SNI) and verify; empty: the upstream's host
    bool operator==(const UpstreamTlsSettings&) const = default;
};

class UpstreamTlsClient {
public:
    struct LoadResult {
        std::shared_ptr<const UpstreamTlsClient> client;
        std::string error; // a sentence naming the file, when client is null
    };
    // `upstream_host` is the host of "https://host:port"; it is the name
    // verified (DNS name or IP address) unless settings.server_name is set.
    static LoadResult create(const UpstreamTlsSettings& settings, std::string_view upstream_host);

    ~UpstreamTlsClient();
    UpstreamTlsClient(const UpstreamTlsClient&) = delete;
    UpstreamTlsClient& operator=(const UpstreamTlsClient&) = delete;

    // A new client-side SSL for one connection: SNI, expected name, and
    // `resume` (may be null) as the session to try first. The caller owns it
    // (null when out of memory).
    ssl_st* new_connection(ssl_session_st* resume) const;
    // "certificate verify failed: unable to get local issuer certificate" for
    // a connection whose handshake failed; "" when verification passed.
    static std::string verify_error(const ssl_st* ssl);

    const std::string& verified_name() const { return name_; }
    bool verifies() const { return settings_.verify; }
    const UpstreamTlsSettings& settings() const { return settings_; }

private:
    UpstreamTlsClient() = default;
    struct ContextDeleter { void operator()(ssl_ctx_st* context) const; };
    std::unique_ptr<ssl_ctx_st, ContextDeleter> context_;
    UpstreamTlsSettings settings_;
    std::string name_;       // verified and, unless an IP address, sent as SNI
    bool name_is_ip_ = false;
};

} // namespace releasectl::proxy
