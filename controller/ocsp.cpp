#include "controller/ocsp.hpp"
#include "proxy/openssl_error.hpp"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>

namespace releasectl::ocsp {
namespace {

struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct X509StoreFree { void operator()(X509_STORE* p) const { X509_STORE_free(p); } };
// Holds borrowed pointers: the certificates are owned by X509Ptr vectors.
struct X509StackFree { void operator()(STACK_OF(X509)* p) const { sk_X509_free(p); } };
struct StringStackFree { void operator()(STACK_OF(OPENSSL_STRING)* p) const { X509_email_free(p); } };
struct CertIdFree { void operator()(OCSP_CERTID* p) const { OCSP_CERTID_free(p); } };
struct RequestFree { void operator()(OCSP_REQUEST* p) const { OCSP_REQUEST_free(p); } };
struct ResponseFree { void operator()(OCSP_RESPONSE* p) const { OCSP_RESPONSE_free(p); } };
struct BasicFree { void operator()(OCSP_BASICRESP* p) const { OCSP_BASICRESP_free(p); } };
using X509Ptr = std::unique_ptr<X509, X509Free>;
using X509StorePtr = std::unique_ptr<X509_STORE, X509StoreFree>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;
using StringStackPtr = std::unique_ptr<STACK_OF(OPENSSL_STRING), StringStackFree>;
using CertIdPtr = std::unique_ptr<OCSP_CERTID, CertIdFree>;
using RequestPtr = std::unique_ptr<OCSP_REQUEST, RequestFree>;
using ResponsePtr = std::unique_ptr<OCSP_RESPONSE, ResponseFree>;
using BasicPtr = std::unique_ptr<OCSP_BASICRESP, BasicFree>;

template <typename T, typename Encode>
std::string der_of(T* object, Encode encode) {
    int size = encode(object, nullptr);
    if (size <= 0) return {};
    std::string out(static_cast<std::size_t>(size), '\0');
    auto* cursor = reinterpret_cast<unsigned char*>(out.data());
    encode(object, &cursor);
    return out;
}

X509Ptr x509_of(const std::string& der) {
    const auto* cursor = reinterpret_cast<const unsigned char*>(der.data());
    return X509Ptr(d2i_X509(nullptr, &cursor, static_cast<long>(der.size())));
}

std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

std::optional<SystemTime> time_of(const ASN1_GENERALIZEDTIME* time) {
    std::tm tm{};
    if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return std::nullopt;
    return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

} // namespace

std::string format_time(SystemTime time) {
    std::time_t t = std::chrono::system_clock::to_time_t(time);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return text;
}

SubjectResult subject_for(ssl_ctx_st* context) {
    SubjectResult out;
    X509* leaf = SSL_CTX_get0_certificate(context);
    if (leaf == nullptr) {
        out.skipped = "has no certificate";
        return out;
    }
    std::string other;
    StringStackPtr urls(X509_get1_ocsp(leaf));
    for (int i = 0; urls && i < sk_OPENSSL_STRING_num(urls.get()); ++i) {
        std::string url = sk_OPENSSL_STRING_value(urls.get(), i);
        if (url.starts_with("http://")) {
            if (!out.subject) out.subject.emplace().url = std::move(url);
        } else if (other.empty()) {
            other = std::move(url);
        }
    }
    if (!out.subject) {
        out.skipped = other.empty() ? "has no OCSP responder (authorityInfoAccess)"
                                    : "names OCSP responder " + other + ", which is not http:// (not supported)";
        out.warn = !other.empty();
        return out;
    }
    // The issuer must come with the certificate: asking needs its name and key.
    STACK_OF(X509)* chain = nullptr;
    SSL_CTX_get0_chain_certs(context, &chain);
    X509* issuer = nullptr;
    for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
        X509* candidate = sk_X509_value(chain, i);
        out.subject->chain_der.push_back(der_of(candidate, i2d_X509));
        if (issuer == nullptr && X509_check_issued(candidate, leaf) == X509_V_OK) issuer = candidate;
    }
    if (issuer == nullptr) {
        out.subject.reset();
        out.skipped = "has an OCSP responder but its issuer is not in the certificate file (append the intermediate "
                      "certificate to get OCSP stapling)";
        out.warn = true;
        ERR_clear_error();
        return out;
    }
    CertIdPtr id(OCSP_cert_to_id(nullptr, leaf, issuer));
    RequestPtr request(OCSP_REQUEST_new());
    CertIdPtr request_id(id ? OCSP_CERTID_dup(id.get()) : nullptr);
    if (!id || !request || !request_id || OCSP_request_add0_id(request.get(), request_id.get()) == nullptr) {
        out.subject.reset();
        out.skipped = "cannot build an OCSP request (" + proxy::openssl_error() + ")";
        out.warn = true;
        return out;
    }
    request_id.release(); // the request owns it now
    out.subject->identity = hex(der_of(id.get(), i2d_OCSP_CERTID));
    out.subject->request_der = der_of(request.get(), i2d_OCSP_REQUEST);
    out.subject->leaf_der = der_of(leaf, i2d_X509);
    out.subject->issuer_der = der_of(issuer, i2d_X509);
    return out;
}

Verified verify_response(const Subject& subject, std::string_view response_der, SystemTime now) {
    Verified out;
    auto fail = [&](std::string why) {
        out.error = std::move(why);
        ERR_clear_error();
        return out;
    };
    const auto* cursor = reinterpret_cast<const unsigned char*>(response_der.data());
    ResponsePtr response(d2i_OCSP_RESPONSE(nullptr, &cursor, static_cast<long>(response_der.size())));
    if (!response) return fail("not a DER OCSP response");
    const int response_status = OCSP_response_status(response.get());
    if (response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL)
        return fail(std::string("the responder answered \"") + OCSP_response_status_str(response_status) + "\"");
    BasicPtr basic(OCSP_response_get1_basic(response.get()));
    if (!basic) return fail("no basic OCSP response inside");

    X509Ptr leaf = x509_of(subject.leaf_der);
    X509Ptr issuer = x509_of(subject.issuer_der);
    if (!leaf || !issuer) return fail("unreadable certificate");
    std::vector<X509Ptr> chain;
    for (const auto& der : subject.chain_der)
        if (auto certificate = x509_of(der)) chain.push_back(std::move(certificate));

    // The issuer is the only trust anchor (partial chain: it may be an
    // intermediate); the chain helps find a delegated responder's path.
    X509StorePtr store(X509_STORE_new());
    X509StackPtr untrusted(sk_X509_new_null());
    if (!store || !untrusted || X509_STORE_add_cert(store.get(), issuer.get()) != 1) return fail("out of memory");
    X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
    X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store.get()), std::chrono::system_clock::to_time_t(now));
    sk_X509_push(untrusted.get(), issuer.get());
    for (auto& certificate : chain) sk_X509_push(untrusted.get(), certificate.get());
    if (OCSP_basic_verify(basic.get(), untrusted.get(), store.get(), 0) != 1)
        return fail("not signed by the issuer or a responder it delegated to (" + proxy::openssl_error() + ")");

    CertIdPtr id(OCSP_cert_to_id(nullptr, leaf.get(), issuer.get()));
    int status = -1, reason = -1;
    ASN1_GENERALIZEDTIME *revoked_at = nullptr, *this_update = nullptr, *next_update = nullptr;
    if (!id || OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &revoked_at, &this_update,
                                     &next_update) != 1)
        return fail("the response says nothing about this certificate");
    auto this_time = time_of(this_update);
    if (!this_time) return fail("unreadable thisUpdate");
    std::optional<SystemTime> next_time;
    if (next_update != nullptr) {
        next_time = time_of(next_update);
        if (!next_time) return fail("unreadable nextUpdate");
    }
    if (*this_time > now + kClockSkew) return fail("thisUpdate " + format_time(*this_time) + " is in the future");
    if (next_time && *next_time < *this_time) return fail("nextUpdate is before thisUpdate");
    if (next_time && *next_time < now - kClockSkew)
        return fail("out of date (nextUpdate " + format_time(*next_time) + " has passed)");

    out.ok = true;
    out.this_update = *this_time;
    out.next_update = next_time;
    if (status == V_OCSP_CERTSTATUS_GOOD) {
        out.status = CertStatus::good;
    } else if (status == V_OCSP_CERTSTATUS_REVOKED) {
        out.status = CertStatus::revoked;
        auto when = time_of(revoked_at);
        out.revocation = "revoked at " + (when ? format_time(*when) : std::string("?"));
        if (reason >= 0) out.revocation += std::string(" (") + OCSP_crl_reason_str(reason) + ")";
    } else {
        out.status = CertStatus::unknown;
    }
    return out;
}

} // namespace releasectl::ocsp
