// Builds the TLS contexts from PEM files and chooses one per SNI name. Plain
// OpenSSL (no Asio): the controller uses this for `releasectl check` too.
#include "tls_context.hpp"
#include "http_head.hpp"
#include "openssl_error.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace releasectl::proxy {
namespace {

struct SslCtxFree { void operator()(SSL_CTX* p) const { SSL_CTX_free(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct BioFree { void operator()(BIO* p) const { BIO_free(p); } };
struct GeneralNamesFree { void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); } };
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesFree>;

// Mozilla "intermediate" (v5.7) for TLS 1.2: forward secret AEAD only. No DHE:
// it needs extra parameters and every client that matters speaks ECDHE.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kTls13Ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* kGroups = "X25519:P-256:P-384";
constexpr unsigned char kSessionIdContext[] = "releasectl";
constexpr long kSessionTimeoutSeconds = 3600;
constexpr long kSessionCacheSize = 20'000;


// Reads a whole file; on failure returns nullopt and a sentence naming it.
std::optional<std::string> read_file(const std::string& path, const char* what, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = std::string("cannot read ") + what + " " + path + ": " + std::strerror(errno);
        return std::nullopt;
    }
    std::ostringstream content;
    content << in.rdbuf();
    return content.str();
}

BioPtr memory_bio(const std::string& bytes) {
    return BioPtr(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

std::string ascii_lower(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::vector<std::string> dns_names_of(X509* certificate) {
    std::vector<std::string> names;
    GeneralNamesPtr general(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr)));
    if (!general) return names;
    for (int i = 0; i < sk_GENERAL_NAME_num(general.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(general.get(), i);
        if (name->type != GEN_DNS) continue;
        const auto* data = reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName));
        names.push_back(ascii_lower(std::string_view(data, static_cast<std::size_t>(ASN1_STRING_length(name->d.dNSName)))));
    }
    return names;
}

std::string time_text(const ASN1_TIME* time) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || ASN1_TIME_print(bio.get(), time) != 1) return "?";
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

int select_http11(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* offered,
                  unsigned offered_length, void*) {
    // Only HTTP/1.1 is spoken; a client offering only h2 gets no ALPN answer
    // (as from nginx without http2) rather than a fatal alert.
    static const unsigned char supported[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, out_length, supported, sizeof supported, offered, offered_length) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

// The SSL ex_data slot that points at the connection's TlsContextSet.
int set_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

// OCSP status_request: the connection's set knows the staple of the context
// SNI chose. OpenSSL frees what it is given, hence the copy.
int staple_response(SSL* ssl, void*) {
    const int index = set_index();
    const auto* set = index < 0 ? nullptr : static_cast<const TlsContextSet*>(SSL_get_ex_data(ssl, index));
    if (set == nullptr) return SSL_TLSEXT_ERR_NOACK;
    const SSL_CTX* chosen = SSL_get_SSL_CTX(ssl);
    for (std::size_t i = 0; i < set->certificates().size(); ++i) {
        if (set->context_at(i) != chosen) continue;
        const std::string& der = set->staple(i);
        if (der.empty()) return SSL_TLSEXT_ERR_NOACK;
        auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(der.size()));
        if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
        std::memcpy(copy, der.data(), der.size());
        if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(der.size())) != 1) {
            OPENSSL_free(copy);
            return SSL_TLSEXT_ERR_NOACK;
        }
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

// The same policy on every context: after an SNI switch OpenSSL reads ALPN and
// the certificate from the new one, and versions/ciphers from the first.
bool apply_policy(SSL_CTX* ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
           SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 &&
           SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) == 1 && SSL_CTX_set_ciphersuites(ctx, kTls13Ciphersuites) == 1 &&
           SSL_CTX_set1_groups_list(ctx, kGroups) == 1 &&
           (SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION), true) &&
           SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1) == 1 &&
           (SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER), true) &&
           (SSL_CTX_sess_set_cache_size(ctx, kSessionCacheSize), true) &&
           (SSL_CTX_set_timeout(ctx, kSessionTimeoutSeconds), true) &&
           (SSL_CTX_set_alpn_select_cb(ctx, select_http11, nullptr), true);
}

struct Loaded {
    SslCtxPtr context;
    TlsContextSet::Certificate certificate;
};

// One certificate entry: chain + key into a fresh context with the policy.
std::optional<Loaded> load_one(const TlsCertificateFiles& files, std::size_t index, TlsCertificateError& error,
                               std::vector<std::string>& warnings) {
    auto fail = [&](const char* field, std::string message) {
        error = TlsCertificateError{index, field, std::move(message)};
        ERR_clear_error();
        return std::nullopt;
    };
    std::string read_error;
    auto cert_pem = read_file(files.cert_path, "certificate file", read_error);
    if (!cert_pem) return fail("cert", read_error);

    // The key must not be readable by everyone: refuse before even reading it.
    struct stat key_stat{};
    if (::stat(files.key_path.c_str(), &key_stat) != 0)
        return fail("key", "cannot read key file " + files.key_path + ": " + std::strerror(errno));
    if (!S_ISREG(key_stat.st_mode)) return fail("key", "key file " + files.key_path + " is not a regular file");
    if (key_stat.st_mode & (S_IROTH | S_IWOTH)) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(key_stat.st_mode & 07777));
        return fail("key", "key file " + files.key_path + " is accessible to all users (mode " + mode +
                               "); run: chmod 600 " + files.key_path + " (or 640 with a group such as ssl-cert)");
    }
    auto key_pem = read_file(files.key_path, "key file", read_error);
    if (!key_pem) return fail("key", read_error);

    BioPtr cert_bio = memory_bio(*cert_pem);
    X509Ptr leaf(PEM_read_bio_X509_AUX(cert_bio.get(), nullptr, nullptr, nullptr));
    if (!leaf) return fail("cert", "certificate file " + files.cert_path + " has no PEM certificate (" + openssl_error() + ")");
    std::vector<X509Ptr> chain;
    while (X509* next = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) chain.emplace_back(next);
    ERR_clear_error(); // the loop ends on "no start line"

    BioPtr key_bio = memory_bio(*key_pem);
    PkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
    if (!key)
        return fail("key", "key file " + files.key_path + " has no usable PEM private key (" + openssl_error() +
                               "; encrypted keys are not supported)");

    SslCtxPtr context(SSL_CTX_new(TLS_server_method()));
    if (!context || !apply_policy(context.get())) return fail("cert", "cannot create a TLS context: " + openssl_error());
    if (SSL_CTX_use_certificate(context.get(), leaf.get()) != 1)
        return fail("cert", "certificate " + files.cert_path + " is not usable: " + openssl_error());
    for (auto& intermediate : chain) {
        if (SSL_CTX_add1_chain_cert(context.get(), intermediate.get()) != 1)
            return fail("cert", "chain certificate in " + files.cert_path + " is not usable: " + openssl_error());
    }
    if (SSL_CTX_use_PrivateKey(context.get(), key.get()) != 1 || SSL_CTX_check_private_key(context.get()) != 1)
        return fail("key", "key file " + files.key_path + " does not match certificate " + files.cert_path + " (" +
                               openssl_error() + ")");

    Loaded loaded{std::move(context), {files.cert_path, dns_names_of(leaf.get()), time_text(X509_get0_notAfter(leaf.get()))}};
    if (loaded.certificate.dns_names.empty())
        warnings.push_back("certificate " + files.cert_path +
                           " has no DNS names in subjectAltName: only clients without a matching SNI name get it");
    if (X509_cmp_current_time(X509_get0_notAfter(leaf.get())) < 0)
        warnings.push_back("certificate " + files.cert_path + " expired on " + loaded.certificate.not_after);
    if (X509_cmp_current_time(X509_get0_notBefore(leaf.get())) > 0)
        warnings.push_back("certificate " + files.cert_path + " is not valid before " +
                           time_text(X509_get0_notBefore(leaf.get())));
    return loaded;
}

} // namespace

// What every set made from one load shares: the contexts (with their session
// caches) and what their certificates name. Never changed after load().
struct TlsContextSet::Shared {
    std::vector<SslCtxPtr> by_certificate; // same order as certificates
    std::vector<Certificate> certificates;

    SSL_CTX* context_for(std::string_view server_name) const {
        if (!server_name.empty() && server_name.back() == '.') server_name.remove_suffix(1);
        for (std::size_t i = 0; i < certificates.size(); ++i)
            for (const auto& name : certificates[i].dns_names)
                if (name.front() != '*' && dns_name_matches(name, server_name)) return by_certificate[i].get();
        for (std::size_t i = 0; i < certificates.size(); ++i)
            for (const auto& name : certificates[i].dns_names)
                if (name.front() == '*' && dns_name_matches(name, server_name)) return by_certificate[i].get();
        return by_certificate.front().get();
    }
};

namespace {
// The SNI choice depends only on the shared contexts, so its argument is the
// Shared block (it lives as long as its contexts), not one of the sets.
int choose_by_server_name(SSL* ssl, int*, void* arg) {
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == nullptr) return SSL_TLSEXT_ERR_OK; // no SNI: the default certificate
    SSL_CTX* chosen = static_cast<const TlsContextSet::Shared*>(arg)->context_for(name);
    if (chosen != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, chosen);
    return SSL_TLSEXT_ERR_OK; // unknown names get the default too, never an alert
}
} // namespace

TlsContextSet::TlsContextSet() = default;
TlsContextSet::~TlsContextSet() = default;

TlsContextSet::LoadResult TlsContextSet::load(const std::vector<TlsCertificateFiles>& files) {
    LoadResult result;
    if (files.empty()) {
        result.error = TlsCertificateError{0, "cert", "no certificate configured"};
        return result;
    }
    // The ex_data slot is allocated here, not on a worker's first handshake.
    if (set_index() < 0) {
        result.error = TlsCertificateError{0, "cert", "cannot create a TLS context: " + openssl_error()};
        return result;
    }
    auto shared = std::make_shared<Shared>();
    for (std::size_t i = 0; i < files.size(); ++i) {
        TlsCertificateError error;
        auto loaded = load_one(files[i], i, error, result.warnings);
        if (!loaded) {
            result.error = std::move(error);
            return result;
        }
        // Every context may be the one SNI chose, so each answers status requests.
        SSL_CTX_set_tlsext_status_cb(loaded->context.get(), staple_response);
        shared->by_certificate.push_back(std::move(loaded->context));
        shared->certificates.push_back(std::move(loaded->certificate));
    }
    // Connections start on the default context, so only it needs the SNI hook;
    // the contexts outlive every connection that uses them (connections hold
    // a set, every set holds the Shared block).
    SSL_CTX* first = shared->by_certificate.front().get();
    SSL_CTX_set_tlsext_servername_callback(first, choose_by_server_name);
    SSL_CTX_set_tlsext_servername_arg(first, shared.get());
    // make_shared needs a public constructor; this one is private on purpose.
    std::shared_ptr<TlsContextSet> set(new TlsContextSet());
    set->staples_.resize(shared->certificates.size());
    set->shared_ = std::move(shared);
    result.contexts = std::move(set);
    return result;
}

std::shared_ptr<const TlsContextSet> TlsContextSet::with_staples(std::vector<std::string> der_per_certificate) const {
    std::shared_ptr<TlsContextSet> set(new TlsContextSet());
    set->shared_ = shared_;
    der_per_certificate.resize(shared_->certificates.size());
    set->staples_ = std::move(der_per_certificate);
    return set;
}

const std::string& TlsContextSet::staple(std::size_t index) const { return staples_.at(index); }

bool TlsContextSet::attach(ssl_st* ssl) const {
    const int index = set_index();
    // The callbacks only read through this pointer, never write.
    return index >= 0 && SSL_set_ex_data(ssl, index, const_cast<TlsContextSet*>(this)) == 1;
}

const std::vector<TlsContextSet::Certificate>& TlsContextSet::certificates() const { return shared_->certificates; }

ssl_ctx_st* TlsContextSet::default_context() const { return shared_->by_certificate.front().get(); }

ssl_ctx_st* TlsContextSet::context_at(std::size_t index) const { return shared_->by_certificate.at(index).get(); }

ssl_ctx_st* TlsContextSet::context_for(std::string_view server_name) const { return shared_->context_for(server_name); }

bool dns_name_matches(std::string_view pattern, std::string_view host) {
    if (pattern.empty() || host.empty()) return false;
    if (!pattern.starts_with("*.")) return iequals(pattern, host);
    // "*.example.com" covers "a.example.com": one non-empty label, no more.
    auto dot = host.find('.');
    if (dot == 0 || dot == std::string_view::npos) return false;
    return iequals(pattern.substr(1), host.substr(dot));
}

} // namespace releasectl::proxy
