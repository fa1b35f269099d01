#include "upstream_tls.hpp"
#include "openssl_error.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace releasectl::proxy {
namespace {

bool is_ip_address(const std::string& host) {
    unsigned char buffer[16];
    return ::inet_pton(AF_INET, host.c_str(), buffer) == 1 || ::inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

} // namespace

void UpstreamTlsClient::ContextDeleter::operator()(ssl_ctx_st* context) const { SSL_CTX_free(context); }

UpstreamTlsClient::~UpstreamTlsClient() = default;

UpstreamTlsClient::LoadResult UpstreamTlsClient::create(const UpstreamTlsSettings& settings,
                                                        std::string_view upstream_host) {
    LoadResult result;
    // make_shared needs a public constructor; this one is private on purpose.
    std::shared_ptr<UpstreamTlsClient> client(new UpstreamTlsClient());
    client->settings_ = settings;
    client->name_ = settings.server_name.empty() ? std::string(upstream_host) : settings.server_name;
    client->name_is_ip_ = is_ip_address(client->name_);

    client->context_.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX* context = client->context_.get();
    if (!context) {
        result.error = "cannot create a TLS client context: " + openssl_error();
        return result;
    }
    static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    // Many apps close without close_notify; the HTTP framing already tells a
    // complete response from a cut one, so an unexpected EOF is a plain EOF.
    SSL_CTX_set_options(context, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_alpn_protos(context, kAlpn, sizeof kAlpn) != 0) {
        result.error = "cannot configure a TLS client context: " + openssl_error();
        return result;
    }
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    if (settings.verify) {
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
        if (!settings.ca_bundle.empty()) {
            std::ifstream probe(settings.ca_bundle);
            if (!probe) {
                result.error = "cannot read CA bundle " + settings.ca_bundle + ": " + std::strerror(errno);
                return result;
            }
            if (SSL_CTX_load_verify_locations(context, settings.ca_bundle.c_str(), nullptr) != 1) {
                result.error = "CA bundle " + settings.ca_bundle + " has no usable PEM certificate (" + openssl_error() + ")";
                return result;
            }
        } else if (SSL_CTX_set_default_verify_paths(context) != 1) {
            result.error = "cannot load the system's CA store: " + openssl_error();
            return result;
        }
    } else {
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);
    }
    result.client = std::move(client);
    return result;
}

ssl_st* UpstreamTlsClient::new_connection(ssl_session_st* resume) const {
    SSL* ssl = SSL_new(context_.get());
    if (!ssl) return nullptr;
    bool ok = true;
    // SNI carries host names only (RFC 6066 §3), never an IP literal.
    if (!name_is_ip_) ok = SSL_set_tlsext_host_name(ssl, name_.c_str()) == 1;
    if (ok && settings_.verify) {
        if (name_is_ip_) ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name_.c_str()) == 1;
        else ok = SSL_set1_host(ssl, name_.c_str()) == 1;
    }
    if (ok && resume) {
        // A copy: OpenSSL marks a session unresumable when a connection using
        // it is freed without close_notify (as pooled upstream connections
        // are), and the pool's session must outlive every such connection.
        SSL_SESSION* copy = SSL_SESSION_dup(resume);
        if (copy) SSL_set_session(ssl, copy); // a stale session only costs a full handshake
        SSL_SESSION_free(copy);
    }
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return nullptr;
    }
    return ssl;
}

std::string UpstreamTlsClient::verify_error(const ssl_st* ssl) {
    long result = SSL_get_verify_result(ssl);
    if (result == X509_V_OK) return {};
    return std::string("certificate verify failed: ") + X509_verify_cert_error_string(result);
}

} // namespace releasectl::proxy
