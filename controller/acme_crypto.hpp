#pragma once
// The cryptography an ACME client needs (RFC 8555 with RFC 7515 JWS, RFC 7517
// JWK, RFC 7638 thumbprints), on OpenSSL: an ES256 account key, signed
// requests, certificate keys and CSRs, a self-signed placeholder served until
// the first certificate arrives, and a look at a certificate file's expiry.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct evp_pkey_st;

namespace releasectl::acme {

std::string base64url(std::string_view bytes);

class AccountKey {
public:
    // The PEM key at `path`, created (mode 0600) when missing. nullopt + *error on failure.
    static std::optional<AccountKey> load_or_create(const std::string& path, std::string* error);

    // {"crv":"P-256","kty":"EC","x":"…","y":"…"}: members in RFC 7638 order.
    const std::string& jwk() const { return jwk_; }
    // base64url(SHA-256(jwk)): the account half of every key authorization.
    std::string thumbprint() const;
    // A flattened JWS (RFC 8555 §6.2): ES256 over {alg, nonce, url, kid or jwk}.
    // An empty `kid` embeds the JWK (newAccount); an empty payload is POST-as-GET.
    std::optional<std::string> sign(std::string_view url, std::string_view nonce, std::string_view kid,
                                    std::string_view payload) const;

private:
    std::shared_ptr<evp_pkey_st> key_;
    std::string jwk_;
};

// A fresh P-256 certificate key (PEM) and a DER CSR naming `domains`.
struct CertificateRequest {
    std::string key_pem;
    std::string csr_der;
};
std::optional<CertificateRequest> make_certificate_request(const std::vector<std::string>& domains, std::string* error);

// A self-signed certificate + key (PEM) for `domains`, valid for a week.
struct KeyAndCertificate {
    std::string key_pem;
    std::string certificate_pem;
};
std::optional<KeyAndCertificate> make_self_signed(const std::vector<std::string>& domains, std::string* error);

// What a PEM certificate file holds, for the renewal decision.
struct CertificateState {
    long long seconds_left = 0;     // until notAfter; negative when expired
    bool self_signed = false;       // the placeholder (issuer == subject)
    std::vector<std::string> names; // subjectAltName DNS names, lower case
    std::string not_after;          // "Jun  1 12:00:00 2027 GMT"
};
std::optional<CertificateState> inspect_certificate_file(const std::string& path);

} // namespace releasectl::acme
