#include "controller/acme_crypto.hpp"

#include "controller/atomic_file.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <ctime>

namespace releasectl::acme {
namespace {

struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct BioFree { void operator()(BIO* p) const { BIO_free(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct ReqFree { void operator()(X509_REQ* p) const { X509_REQ_free(p); } };
struct MdCtxFree { void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); } };
struct BnFree { void operator()(BIGNUM* p) const { BN_free(p); } };
struct EcdsaSigFree { void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); } };
struct ExtensionsFree {
    void operator()(STACK_OF(X509_EXTENSION)* p) const { sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free); }
};
struct GeneralNamesFree { void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); } };
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

std::string openssl_error(const char* what) {
    char text[256] = "unknown error";
    if (unsigned long code = ERR_get_error()) ERR_error_string_n(code, text, sizeof text);
    ERR_clear_error();
    return std::string(what) + ": " + text;
}

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(size));
}

std::optional<std::string> private_key_pem(EVP_PKEY* key) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) return std::nullopt;
    return bio_text(bio.get());
}

// "DNS:a.example,DNS:b.example" for OpenSSL's extension parser.
std::string san_list(const std::vector<std::string>& domains) {
    std::string out;
    for (const auto& domain : domains) out += (out.empty() ? "DNS:" : ",DNS:") + domain;
    return out;
}

std::string coordinate(EVP_PKEY* key, const char* name) {
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) return {};
    BnPtr value(raw);
    unsigned char bytes[32];
    if (BN_bn2binpad(value.get(), bytes, sizeof bytes) != sizeof bytes) return {};
    return base64url(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

std::string time_text(const ASN1_TIME* time) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || ASN1_TIME_print(bio.get(), time) != 1) return "?";
    return bio_text(bio.get());
}

} // namespace

std::string base64url(std::string_view bytes) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                     static_cast<unsigned char>(bytes[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (i + 1 == bytes.size()) {
        unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
    } else if (i + 2 == bytes.size()) {
        unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
    }
    return out; // no padding (RFC 7515 §2)
}

std::optional<AccountKey> AccountKey::load_or_create(const std::string& path, std::string* error) {
    bool missing = false;
    std::string read_error;
    auto pem = read_whole_file(path, &read_error, &missing);
    PkeyPtr key;
    if (pem) {
        BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
        key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
        if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC) {
            *error = "ACME account key " + path + " is not a PEM P-256 key";
            ERR_clear_error();
            return std::nullopt;
        }
    } else if (missing) {
        key.reset(EVP_EC_gen("P-256"));
        auto text = key ? private_key_pem(key.get()) : std::nullopt;
        if (!text) {
            *error = openssl_error("cannot create an ACME account key");
            return std::nullopt;
        }
        if (auto written = write_file_atomically(path, *text, 0600); !written) {
            *error = "cannot write the ACME account key: " + written.error;
            return std::nullopt;
        }
    } else {
        *error = "cannot read the ACME account key: " + read_error;
        return std::nullopt;
    }
    AccountKey account;
    std::string x = coordinate(key.get(), OSSL_PKEY_PARAM_EC_PUB_X);
    std::string y = coordinate(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
    if (x.empty() || y.empty()) {
        *error = "ACME account key " + path + " is not a P-256 key";
        return std::nullopt;
    }
    account.jwk_ = R"({"crv":"P-256","kty":"EC","x":")" + x + R"(","y":")" + y + R"("})";
    account.key_ = std::shared_ptr<EVP_PKEY>(key.release(), PkeyFree{});
    return account;
}

std::string AccountKey::thumbprint() const {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned length = 0;
    EVP_Digest(jwk_.data(), jwk_.size(), digest, &length, EVP_sha256(), nullptr);
    return base64url(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::optional<std::string> AccountKey::sign(std::string_view url, std::string_view nonce, std::string_view kid,
                                            std::string_view payload) const {
    std::string header = R"({"alg":"ES256","nonce":")" + std::string(nonce) + R"(","url":")" + std::string(url) + "\",";
    header += kid.empty() ? "\"jwk\":" + jwk_ + "}" : "\"kid\":\"" + std::string(kid) + "\"}";
    const std::string protected64 = base64url(header);
    const std::string payload64 = base64url(payload);
    const std::string signing_input = protected64 + "." + payload64;

    std::unique_ptr<EVP_MD_CTX, MdCtxFree> context(EVP_MD_CTX_new());
    std::size_t der_length = 0;
    if (!context || EVP_DigestSignInit(context.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(context.get(), nullptr, &der_length,
                       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1)
        return std::nullopt;
    std::string der(der_length, '\0');
    if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(der.data()), &der_length,
                       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1)
        return std::nullopt;
    // JWS wants R || S (32 bytes each), OpenSSL gives DER.
    const auto* cursor = reinterpret_cast<const unsigned char*>(der.data());
    std::unique_ptr<ECDSA_SIG, EcdsaSigFree> signature(d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(der_length)));
    if (!signature) return std::nullopt;
    unsigned char raw[64];
    if (BN_bn2binpad(ECDSA_SIG_get0_r(signature.get()), raw, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(signature.get()), raw + 32, 32) != 32)
        return std::nullopt;
    return R"({"protected":")" + protected64 + R"(","payload":")" + payload64 + R"(","signature":")" +
           base64url(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw)) + "\"}";
}

std::optional<CertificateRequest> make_certificate_request(const std::vector<std::string>& domains, std::string* error) {
    PkeyPtr key(EVP_EC_gen("P-256"));
    std::unique_ptr<X509_REQ, ReqFree> request(X509_REQ_new());
    if (!key || !request || domains.empty()) {
        *error = openssl_error("cannot create a certificate key");
        return std::nullopt;
    }
    X509_REQ_set_version(request.get(), 0);
    X509_NAME* subject = X509_REQ_get_subject_name(request.get());
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(domains[0].c_str()),
                               -1, -1, 0);
    X509_REQ_set_pubkey(request.get(), key.get());
    std::unique_ptr<STACK_OF(X509_EXTENSION), ExtensionsFree> extensions(sk_X509_EXTENSION_new_null());
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san_list(domains).c_str());
    if (!san || !extensions) {
        *error = openssl_error("invalid domain names for a CSR");
        return std::nullopt;
    }
    sk_X509_EXTENSION_push(extensions.get(), san);
    if (X509_REQ_add_extensions(request.get(), extensions.get()) != 1 ||
        X509_REQ_sign(request.get(), key.get(), EVP_sha256()) <= 0) {
        *error = openssl_error("cannot sign the CSR");
        return std::nullopt;
    }
    int length = i2d_X509_REQ(request.get(), nullptr);
    std::string der(static_cast<std::size_t>(length), '\0');
    auto* out = reinterpret_cast<unsigned char*>(der.data());
    i2d_X509_REQ(request.get(), &out);
    auto key_text = private_key_pem(key.get());
    if (!key_text) {
        *error = openssl_error("cannot encode the certificate key");
        return std::nullopt;
    }
    return CertificateRequest{std::move(*key_text), std::move(der)};
}

std::optional<KeyAndCertificate> make_self_signed(const std::vector<std::string>& domains, std::string* error) {
    PkeyPtr key(EVP_EC_gen("P-256"));
    X509Ptr certificate(X509_new());
    if (!key || !certificate || domains.empty()) {
        *error = openssl_error("cannot create a placeholder certificate");
        return std::nullopt;
    }
    X509_set_version(certificate.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), static_cast<long>(std::time(nullptr)));
    X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(certificate.get()), 7L * 24 * 3600);
    X509_NAME* subject = X509_get_subject_name(certificate.get());
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(domains[0].c_str()),
                               -1, -1, 0);
    X509_set_issuer_name(certificate.get(), subject);
    X509_set_pubkey(certificate.get(), key.get());
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, certificate.get(), certificate.get(), nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &context, NID_subject_alt_name, san_list(domains).c_str());
    if (!san || X509_add_ext(certificate.get(), san, -1) != 1 ||
        X509_sign(certificate.get(), key.get(), EVP_sha256()) <= 0) {
        if (san) X509_EXTENSION_free(san);
        *error = openssl_error("cannot sign the placeholder certificate");
        return std::nullopt;
    }
    X509_EXTENSION_free(san);
    BioPtr bio(BIO_new(BIO_s_mem()));
    auto key_text = private_key_pem(key.get());
    if (!bio || !key_text || PEM_write_bio_X509(bio.get(), certificate.get()) != 1) {
        *error = openssl_error("cannot encode the placeholder certificate");
        return std::nullopt;
    }
    return KeyAndCertificate{std::move(*key_text), bio_text(bio.get())};
}

std::optional<CertificateState> inspect_certificate_file(const std::string& path) {
    std::string error;
    auto pem = read_whole_file(path, &error);
    if (!pem) return std::nullopt;
    BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
    X509Ptr certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    ERR_clear_error();
    if (!certificate) return std::nullopt;
    CertificateState state;
    int days = 0, seconds = 0;
    if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(certificate.get())) != 1) return std::nullopt;
    state.seconds_left = static_cast<long long>(days) * 86400 + seconds;
    state.self_signed = X509_NAME_cmp(X509_get_subject_name(certificate.get()), X509_get_issuer_name(certificate.get())) == 0;
    state.not_after = time_text(X509_get0_notAfter(certificate.get()));
    std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(certificate.get(), NID_subject_alt_name, nullptr, nullptr)));
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
        if (name->type != GEN_DNS) continue;
        std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName)),
                         static_cast<std::size_t>(ASN1_STRING_length(name->d.dNSName)));
        for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        state.names.push_back(std::move(text));
    }
    return state;
}

} // namespace releasectl::acme
