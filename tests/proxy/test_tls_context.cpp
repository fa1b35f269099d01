// TlsContextSet: SNI choice (exact, one-label wildcard, default) and the
// errors `releasectl check` shows, on certificates made here in memory.
#include "proxy/tls_context.hpp"
#include "proxy/upstream_tls.hpp"

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace releasectl::proxy;
namespace fs = std::filesystem;

namespace {

struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct FileClose { void operator()(FILE* f) const { std::fclose(f); } };

// A temp dir with self-signed P-256 certificates for the given SANs.
class CertificateFactory {
public:
    CertificateFactory() {
        char pattern[] = "/tmp/releasectl-tls-unit-XXXXXX";
        dir_ = ::mkdtemp(pattern);
    }
    ~CertificateFactory() { fs::remove_all(dir_); }

    TlsCertificateFiles make(const std::string& name, const std::string& san, mode_t key_mode = 0600) {
        std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_EC_gen("P-256"));
        std::unique_ptr<X509, X509Free> cert(X509_new());
        X509_set_version(cert.get(), 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial_);
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
        X509_NAME* subject = X509_get_subject_name(cert.get());
        X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name.c_str()), -1,
                                   -1, 0);
        X509_set_issuer_name(cert.get(), subject);
        X509_set_pubkey(cert.get(), key.get());
        if (!san.empty()) {
            X509V3_CTX ctx;
            X509V3_set_ctx_nodb(&ctx);
            X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
            X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
            X509_add_ext(cert.get(), ext, -1);
            X509_EXTENSION_free(ext);
        }
        X509_sign(cert.get(), key.get(), EVP_sha256());
        TlsCertificateFiles files{dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key"};
        std::unique_ptr<FILE, FileClose> cert_file(std::fopen(files.cert_path.c_str(), "w"));
        PEM_write_X509(cert_file.get(), cert.get());
        std::unique_ptr<FILE, FileClose> key_file(std::fopen(files.key_path.c_str(), "w"));
        PEM_write_PrivateKey(key_file.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
        ::chmod(files.key_path.c_str(), key_mode);
        return files;
    }
    const std::string& dir() const { return dir_; }

private:
    std::string dir_;
    long serial_ = 0;
};

} // namespace

TEST_CASE("DNS names: exact or one-label wildcard, any case") {
    CHECK(dns_name_matches("example.com", "EXAMPLE.com"));
    CHECK_FALSE(dns_name_matches("example.com", "www.example.com"));
    CHECK(dns_name_matches("*.example.com", "api.example.com"));
    CHECK(dns_name_matches("*.example.com", "API.Example.COM"));
    CHECK_FALSE(dns_name_matches("*.example.com", "example.com"));
    CHECK_FALSE(dns_name_matches("*.example.com", "a.b.example.com"));
    CHECK_FALSE(dns_name_matches("*.example.com", ".example.com"));
    CHECK_FALSE(dns_name_matches("*.example.com", "evilexample.com"));
    CHECK_FALSE(dns_name_matches("", "example.com"));
}

TEST_CASE("SNI picks by subjectAltName: exact names first, then wildcards, else the first certificate") {
    CertificateFactory factory;
    auto first = factory.make("first", "DNS:first.test");
    auto wildcard = factory.make("wildcard", "DNS:*.shared.test");
    auto exact = factory.make("exact", "DNS:api.shared.test,DNS:other.test");
    auto loaded = TlsContextSet::load({first, wildcard, exact});
    REQUIRE_FALSE(loaded.error);
    REQUIRE(loaded.contexts);
    const auto& set = *loaded.contexts;
    REQUIRE(set.certificates().size() == 3);
    CHECK(set.certificates()[2].dns_names == std::vector<std::string>{"api.shared.test", "other.test"});
    // One name only each certificate has, to learn which context is whose.
    SSL_CTX* by_index[3] = {set.context_for("first.test"), set.context_for("x.shared.test"), set.context_for("other.test")};
    CHECK(set.default_context() == by_index[0]);
    CHECK(set.context_for("api.shared.test") == by_index[2]); // exact beats the earlier wildcard
    CHECK(set.context_for("www.shared.test") == by_index[1]);
    CHECK(set.context_for("www.shared.test.") == by_index[1]); // trailing dot
    CHECK(set.context_for("a.b.shared.test") == set.default_context());
    CHECK(set.context_for("unknown.example") == set.default_context());
    CHECK(by_index[1] != by_index[0]);
    CHECK(by_index[2] != by_index[1]);
}

TEST_CASE("unusable files are errors naming the entry, the field and the file") {
    CertificateFactory factory;
    auto good = factory.make("good", "DNS:good.test");
    auto other = factory.make("other", "DNS:other.test");

    auto loaded = TlsContextSet::load({good, {good.cert_path, other.key_path}});
    REQUIRE(loaded.error);
    CHECK(loaded.error->index == 1);
    CHECK(loaded.error->field == "key");
    CHECK(loaded.error->message.find("does not match certificate " + good.cert_path) != std::string::npos);

    auto loose = factory.make("loose", "DNS:loose.test", 0644);
    loaded = TlsContextSet::load({loose});
    REQUIRE(loaded.error);
    CHECK(loaded.error->field == "key");
    CHECK(loaded.error->message.find("mode 0644") != std::string::npos);
    CHECK(loaded.error->message.find("chmod 600 " + loose.key_path) != std::string::npos);

    auto group_readable = factory.make("group", "DNS:group.test", 0640);
    CHECK_FALSE(TlsContextSet::load({group_readable}).error); // ssl-cert style group access is fine

    loaded = TlsContextSet::load({{factory.dir() + "/missing.pem", good.key_path}});
    REQUIRE(loaded.error);
    CHECK(loaded.error->field == "cert");
    CHECK(loaded.error->message.find("cannot read certificate file") != std::string::npos);

    CHECK(TlsContextSet::load({}).error);
}

TEST_CASE("a certificate without DNS names loads with a warning") {
    CertificateFactory factory;
    auto bare = factory.make("bare", "");
    auto loaded = TlsContextSet::load({bare});
    REQUIRE_FALSE(loaded.error);
    REQUIRE(loaded.warnings.size() == 1);
    CHECK(loaded.warnings[0].find("no DNS names") != std::string::npos);
}

TEST_CASE("upstream TLS client: CA bundle errors name the file; SNI for names, never for IP literals") {
    CertificateFactory factory;
    auto missing = UpstreamTlsClient::create({true, factory.dir() + "/nope.pem", ""}, "127.0.0.1");
    CHECK_FALSE(missing.client);
    CHECK(missing.error.find("cannot read CA bundle " + factory.dir() + "/nope.pem") == 0);

    const std::string garbage = factory.dir() + "/garbage.pem";
    { std::unique_ptr<FILE, FileClose> f(std::fopen(garbage.c_str(), "w")); std::fputs("not a certificate\n", f.get()); }
    auto unusable = UpstreamTlsClient::create({true, garbage, ""}, "127.0.0.1");
    CHECK_FALSE(unusable.client);
    CHECK(unusable.error.find("CA bundle " + garbage + " has no usable PEM certificate") == 0);

    auto ca = factory.make("ca", "DNS:app.internal");
    auto by_ip = UpstreamTlsClient::create({true, ca.cert_path, ""}, "127.0.0.1");
    REQUIRE(by_ip.client);
    CHECK(by_ip.client->verified_name() == "127.0.0.1");
    SSL* ip_ssl = by_ip.client->new_connection(nullptr);
    REQUIRE(ip_ssl);
    CHECK(SSL_get_servername(ip_ssl, TLSEXT_NAMETYPE_host_name) == nullptr);
    CHECK(SSL_get_verify_mode(ip_ssl) == SSL_VERIFY_PEER);
    SSL_free(ip_ssl);

    auto named = UpstreamTlsClient::create({true, ca.cert_path, "app.internal"}, "127.0.0.1");
    REQUIRE(named.client);
    SSL* named_ssl = named.client->new_connection(nullptr);
    REQUIRE(named_ssl);
    CHECK(std::string(SSL_get_servername(named_ssl, TLSEXT_NAMETYPE_host_name)) == "app.internal");
    CHECK(UpstreamTlsClient::verify_error(named_ssl).empty());
    SSL_free(named_ssl);

    auto unverified = UpstreamTlsClient::create({false, "", ""}, "localhost");
    REQUIRE(unverified.client);
    SSL* loose = unverified.client->new_connection(nullptr);
    REQUIRE(loose);
    CHECK(SSL_get_verify_mode(loose) == SSL_VERIFY_NONE);
    CHECK(std::string(SSL_get_servername(loose, TLSEXT_NAMETYPE_host_name)) == "localhost");
    SSL_free(loose);
}

namespace {

struct SslFree { void operator()(SSL* p) const { SSL_free(p); } };
struct SslCtxFree { void operator()(SSL_CTX* p) const { SSL_CTX_free(p); } };

// One in-memory handshake against `set` (as serve_tls_client starts it) with
// a client asking for OCSP: the staple it received, or nullopt for none.
std::optional<std::string> staple_seen(const TlsContextSet& set, const char* server_name, bool attach = true) {
    std::unique_ptr<SSL_CTX, SslCtxFree> client_ctx(SSL_CTX_new(TLS_client_method()));
    std::unique_ptr<SSL, SslFree> client(SSL_new(client_ctx.get()));
    std::unique_ptr<SSL, SslFree> server(SSL_new(set.default_context()));
    REQUIRE((client && server));
    if (attach) REQUIRE(set.attach(server.get()));
    BIO *client_bio = nullptr, *server_bio = nullptr;
    REQUIRE(BIO_new_bio_pair(&client_bio, 0, &server_bio, 0) == 1);
    SSL_set_bio(client.get(), client_bio, client_bio);
    SSL_set_bio(server.get(), server_bio, server_bio);
    SSL_set_connect_state(client.get());
    SSL_set_accept_state(server.get());
    if (server_name) SSL_set_tlsext_host_name(client.get(), server_name);
    SSL_set_tlsext_status_type(client.get(), TLSEXT_STATUSTYPE_ocsp);
    bool client_done = false, server_done = false;
    for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
        if (!client_done) client_done = SSL_do_handshake(client.get()) == 1;
        if (!server_done) server_done = SSL_do_handshake(server.get()) == 1;
    }
    REQUIRE((client_done && server_done));
    const unsigned char* response = nullptr;
    long size = SSL_get_tlsext_status_ocsp_resp(client.get(), &response);
    if (size <= 0 || response == nullptr) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(response), static_cast<std::size_t>(size));
}

} // namespace

TEST_CASE("OCSP staples: per certificate, per set, the contexts shared") {
    CertificateFactory factory;
    auto first = factory.make("first", "DNS:first.test");
    auto second = factory.make("second", "DNS:second.test");
    auto loaded = TlsContextSet::load({first, second});
    REQUIRE_FALSE(loaded.error);
    const auto& base = *loaded.contexts;
    CHECK(base.staple(0).empty());
    CHECK_FALSE(staple_seen(base, "first.test"));

    auto stapled = base.with_staples({"", "staple of second"}); // the bytes are opaque to the proxy
    CHECK(stapled->same_contexts(base));
    CHECK(stapled->default_context() == base.default_context());
    CHECK(stapled->context_for("second.test") == base.context_for("second.test"));
    CHECK_FALSE(staple_seen(*stapled, "first.test"));
    CHECK(staple_seen(*stapled, "second.test") == std::optional<std::string>("staple of second"));
    CHECK_FALSE(staple_seen(base, "second.test")); // same contexts, the older set staples nothing
    CHECK_FALSE(staple_seen(*stapled, "second.test", /*attach=*/false)); // no set on the connection: no staple

    auto both = stapled->with_staples({"staple of first"}); // missing entries: none
    CHECK(staple_seen(*both, nullptr) == std::optional<std::string>("staple of first"));
    CHECK_FALSE(staple_seen(*both, "second.test"));
    CHECK(both->certificates().size() == 2);
    CHECK_FALSE(base.same_contexts(*TlsContextSet::load({first, second}).contexts));
}
