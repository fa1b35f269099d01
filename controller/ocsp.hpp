#pragma once
// OCSP for stapling (RFC 6960): what to ask a certificate's responder, and
// whether its answer may be stapled. OpenSSL, no I/O, the clock passed in;
// OpenSSL types stay out of this header (ssl_ctx_st is SSL_CTX).
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct ssl_ctx_st;

namespace releasectl::ocsp {

using SystemTime = std::chrono::system_clock::time_point;

// Clocks of responder and client may disagree this much (as OpenSSL's
// OCSP_check_validity callers usually allow).
constexpr std::chrono::seconds kClockSkew{300};

// One served certificate as its responder sees it. DER copies rather than
// OpenSSL objects: the stapler keeps these across reloads and coroutines.
struct Subject {
    std::string url;                    // the responder: first http:// OCSP URI of the leaf's AIA
    std::string identity;               // the CertID (issuer name + key hash, serial), hex: same certificate across reloads
    std::string request_der;            // the OCSPRequest to POST
    std::string leaf_der;
    std::string issuer_der;
    std::vector<std::string> chain_der; // the configured chain (untrusted helpers for a delegated responder)
};

struct SubjectResult {
    std::optional<Subject> subject;
    std::string skipped; // why no staple is asked for: "has no OCSP responder (authorityInfoAccess)"
    bool warn = false;   // worth an operator's attention (https:// responder, issuer missing)
};

// The leaf and configured chain of `context` (loaded with its certificate).
SubjectResult subject_for(ssl_ctx_st* context);

enum class CertStatus { good, revoked, unknown };

struct Verified {
    bool ok = false;           // a signed, current answer about this certificate
    std::string error;         // why not ok, a sentence fragment
    CertStatus status = CertStatus::unknown;
    SystemTime this_update{};
    std::optional<SystemTime> next_update;
    std::string revocation;    // "revoked at 2026-01-02 03:04:05 UTC (keyCompromise)"
};

// Checks a DER OCSPResponse for `subject` as a client would: status
// successful, signed by the issuer or a responder it delegated to, about this
// certificate, current at `now` (with kClockSkew).
Verified verify_response(const Subject& subject, std::string_view response_der, SystemTime now);

// "2026-05-01 12:00:00 UTC" for logs.
std::string format_time(SystemTime time);

} // namespace releasectl::ocsp
