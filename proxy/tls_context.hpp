#pragma once
// The server's TLS material: one OpenSSL context per configured certificate,
// all with the same policy (TLS 1.2 + 1.3, Mozilla "intermediate" ciphers,
// ALPN http/1.1, session tickets + a server session cache), and the SNI choice
// between them. Immutable once built; a reload builds a new set and publishes
// it, connections keep the set they started with. OCSP staples live in the
// set too: with_staples() makes a new set around the same contexts, so a
// fresh staple never rereads a file nor takes a lock on the request path.
// OpenSSL types stay out of this header (ssl_ctx_st is SSL_CTX, ssl_st SSL).
#include "settings.hpp"

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct ssl_ctx_st;
struct ssl_st;

namespace releasectl::proxy {

// Why a certificate could not be used: which entry, which of its files.
struct TlsCertificateError {
    std::size_t index = 0; // into the certificates list
    std::string field;     // "cert" or "key"
    std::string message;   // a sentence naming the file
};

class TlsContextSet {
public:
    struct Certificate {
        std::string cert_path;
        std::vector<std::string> dns_names; // subjectAltName DNS entries, lower case
        std::string not_after;              // for logs: "Jun  1 12:00:00 2027 GMT"
    };

    // Loads every certificate; the first is the default (no SNI, unknown name).
    // Errors are values: a reload keeps the running set when this fails.
    struct LoadResult {
        std::shared_ptr<const TlsContextSet> contexts;
        std::optional<TlsCertificateError> error;
        std::vector<std::string> warnings; // expired, not yet valid, no DNS names
    };
    static LoadResult load(const std::vector<TlsCertificateFiles>& files);

    ~TlsContextSet();
    TlsContextSet(const TlsContextSet&) = delete;
    TlsContextSet& operator=(const TlsContextSet&) = delete;

    // Every TLS connection starts on this one; SNI may switch it.
    ssl_ctx_st* default_context() const;
    // The context whose certificate names `server_name` (exact names before
    // "*.example.com"; a wildcard covers exactly one label), else the default.
    ssl_ctx_st* context_for(std::string_view server_name) const;
    // The context of certificates()[index] (the controller reads the leaf and
    // chain from it to ask for OCSP responses).
    ssl_ctx_st* context_at(std::size_t index) const;
    const std::vector<Certificate>& certificates() const;

    // A set sharing these contexts (and their session caches) that staples
    // `der_per_certificate[i]` (a DER OCSPResponse, "" = none) to handshakes
    // on certificates()[i] for clients that ask. Missing entries mean none.
    std::shared_ptr<const TlsContextSet> with_staples(std::vector<std::string> der_per_certificate) const;
    // The staple served with certificates()[index]; "" when none.
    const std::string& staple(std::size_t index) const;
    // True when both sets hold the very same contexts (one is with_staples of
    // the other, or both of the same load).
    bool same_contexts(const TlsContextSet& other) const { return shared_ == other.shared_; }
    // Lets the handshake callbacks find this set from `ssl` (the OCSP staple
    // is per set, the contexts are shared between sets). Call right after
    // SSL_new; this set must outlive the SSL. False only when out of memory
    // (the connection then works, without a staple).
    bool attach(ssl_st* ssl) const;

    struct Shared; // the contexts and names every set of one load shares (tls_context.cpp)

private:
    TlsContextSet();
    std::shared_ptr<const Shared> shared_;
    std::vector<std::string> staples_; // by certificate index; "" = none
};

// "a.example.com" against "a.example.com" or "*.example.com" (one label only);
// both sides compared case-insensitively.
bool dns_name_matches(std::string_view pattern, std::string_view host);

} // namespace releasectl::proxy
