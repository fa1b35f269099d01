// ACME cryptography: base64url, the account key's JWK, JWS signatures that
// verify, CSRs naming the domains, the placeholder certificate.
#include "controller/acme_crypto.hpp"
#include "controller/atomic_file.hpp"

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>

using namespace releasectl;
namespace fs = std::filesystem;

namespace {

std::string base64url_decode(std::string_view text) {
    std::string standard(text);
    for (char& c : standard) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (standard.size() % 4) standard.push_back('=');
    std::string out(standard.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(standard.data()), static_cast<int>(standard.size()));
    out.resize(static_cast<std::size_t>(n) - (standard.size() - text.size()));
    return out;
}

std::string json_member(const std::string& json, const std::string& name) {
    auto at = json.find("\"" + name + "\":\"");
    if (at == std::string::npos) return {};
    at += name.size() + 4;
    return json.substr(at, json.find('"', at) - at);
}

struct TempDir {
    std::string path;
    TempDir() {
        char pattern[] = "/tmp/releasectl-acme-unit-XXXXXX";
        path = ::mkdtemp(pattern);
    }
    ~TempDir() { fs::remove_all(path); }
};

} // namespace

TEST_CASE("base64url has no padding and the URL alphabet") {
    CHECK(acme::base64url("") == "");
    CHECK(acme::base64url("f") == "Zg");
    CHECK(acme::base64url("fo") == "Zm8");
    CHECK(acme::base64url("foo") == "Zm9v");
    CHECK(acme::base64url("\xfb\xff") == "-_8");
}

TEST_CASE("the account key is created once (0600) and signs JWS that verify") {
    TempDir dir;
    const std::string key_path = dir.path + "/account.key";
    std::string error;
    auto account = acme::AccountKey::load_or_create(key_path, &error);
    REQUIRE_MESSAGE(account, error);
    struct stat info{};
    REQUIRE(::stat(key_path.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0600);
    auto again = acme::AccountKey::load_or_create(key_path, &error);
    REQUIRE(again);
    CHECK(again->jwk() == account->jwk());
    CHECK(account->jwk().starts_with(R"({"crv":"P-256","kty":"EC","x":")")); // RFC 7638 member order
    CHECK(account->thumbprint().size() == 43);                                // SHA-256, base64url

    auto signed_new_account = account->sign("https://ca/new-acct", "nonce-1", "", R"({"termsOfServiceAgreed":true})");
    REQUIRE(signed_new_account);
    std::string header = base64url_decode(json_member(*signed_new_account, "protected"));
    CHECK(header.find(R"("alg":"ES256")") != std::string::npos);
    CHECK(header.find(R"("nonce":"nonce-1")") != std::string::npos);
    CHECK(header.find(R"("url":"https://ca/new-acct")") != std::string::npos);
    CHECK(header.find(R"("jwk":{)") != std::string::npos);

    auto post_as_get = account->sign("https://ca/order/1", "nonce-2", "https://ca/acct/7", "");
    REQUIRE(post_as_get);
    CHECK(json_member(*post_as_get, "payload").empty());
    header = base64url_decode(json_member(*post_as_get, "protected"));
    CHECK(header.find(R"("kid":"https://ca/acct/7")") != std::string::npos);

    // The signature is R || S over "protected.payload" and verifies with the key.
    std::string signature = base64url_decode(json_member(*post_as_get, "signature"));
    REQUIRE(signature.size() == 64);
    std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(ECDSA_SIG_new(), ECDSA_SIG_free);
    ECDSA_SIG_set0(sig.get(), BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()), 32, nullptr),
                   BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()) + 32, 32, nullptr));
    unsigned char* der = nullptr;
    int der_length = i2d_ECDSA_SIG(sig.get(), &der);
    std::unique_ptr<FILE, decltype(&std::fclose)> file(std::fopen(key_path.c_str(), "r"), std::fclose);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_PrivateKey(file.get(), nullptr, nullptr, nullptr),
                                                             EVP_PKEY_free);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> verify(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    std::string input = json_member(*post_as_get, "protected") + ".";
    REQUIRE(EVP_DigestVerifyInit(verify.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1);
    CHECK(EVP_DigestVerify(verify.get(), der, static_cast<std::size_t>(der_length),
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
    OPENSSL_free(der);
}

TEST_CASE("a CSR names every domain and is signed by its key") {
    std::string error;
    auto request = acme::make_certificate_request({"example.test", "www.example.test"}, &error);
    REQUIRE_MESSAGE(request, error);
    const auto* cursor = reinterpret_cast<const unsigned char*>(request->csr_der.data());
    std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> csr(
        d2i_X509_REQ(nullptr, &cursor, static_cast<long>(request->csr_der.size())), X509_REQ_free);
    REQUIRE(csr);
    CHECK(X509_REQ_verify(csr.get(), X509_REQ_get0_pubkey(csr.get())) == 1);
    std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)> extensions(
        X509_REQ_get_extensions(csr.get()),
        [](STACK_OF(X509_EXTENSION)* p) { sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free); });
    REQUIRE(extensions);
    std::unique_ptr<BIO, decltype(&BIO_free)> text(BIO_new(BIO_s_mem()), BIO_free);
    X509V3_EXT_print(text.get(), sk_X509_EXTENSION_value(extensions.get(), 0), 0, 0);
    char* data = nullptr;
    const long size = BIO_get_mem_data(text.get(), &data);
    const std::string printed(data, static_cast<std::size_t>(size));
    CHECK(printed == "DNS:example.test, DNS:www.example.test");
    CHECK(request->key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
}

TEST_CASE("the placeholder is self-signed for the domains and valid for a week") {
    TempDir dir;
    std::string error;
    auto placeholder = acme::make_self_signed({"Example.test", "b.example.test"}, &error);
    REQUIRE_MESSAGE(placeholder, error);
    REQUIRE(write_file_atomically(dir.path + "/cert.pem", placeholder->certificate_pem));
    auto state = acme::inspect_certificate_file(dir.path + "/cert.pem");
    REQUIRE(state);
    CHECK(state->self_signed);
    CHECK(state->names == std::vector<std::string>{"example.test", "b.example.test"});
    CHECK(state->seconds_left > 6 * 24 * 3600);
    CHECK(state->seconds_left <= 7 * 24 * 3600);
    CHECK_FALSE(acme::inspect_certificate_file(dir.path + "/missing.pem"));
}
