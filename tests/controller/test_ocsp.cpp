// OCSP stapling, the parts without sockets: refresh timing on an injected
// clock, the staple book (reloads keep staples, the newest set wins), response
// verification against responses built here with OpenSSL, and the stapler
// itself with an in-process responder instead of HTTP.
#include "controller/ocsp.hpp"
#include "controller/ocsp_schedule.hpp"
#include "controller/ocsp_stapler.hpp"
#include "proxy/tls_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

using namespace releasectl;
using namespace std::chrono_literals;
using ocsp::StapleBook;
using ocsp::SystemTime;
namespace fs = std::filesystem;

namespace {

struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct SslCtxFree { void operator()(SSL_CTX* p) const { SSL_CTX_free(p); } };
struct CertIdFree { void operator()(OCSP_CERTID* p) const { OCSP_CERTID_free(p); } };
struct BasicFree { void operator()(OCSP_BASICRESP* p) const { OCSP_BASICRESP_free(p); } };
struct ResponseFree { void operator()(OCSP_RESPONSE* p) const { OCSP_RESPONSE_free(p); } };
struct RequestFree { void operator()(OCSP_REQUEST* p) const { OCSP_REQUEST_free(p); } };
struct TimeFree { void operator()(ASN1_TIME* p) const { ASN1_TIME_free(p); } };
struct FileClose { void operator()(FILE* f) const { std::fclose(f); } };
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using TimePtr = std::unique_ptr<ASN1_TIME, TimeFree>;

SystemTime at(long seconds) { return SystemTime{} + std::chrono::seconds(1'800'000'000 + seconds); }

struct Issued {
    PkeyPtr key;
    X509Ptr cert;
};

// A P-256 certificate for `name`, signed by `issuer` (self-signed without one).
Issued issue(const std::string& name, const Issued* issuer, const std::vector<std::pair<int, std::string>>& extensions,
             long serial) {
    Issued out{PkeyPtr(EVP_EC_gen("P-256")), X509Ptr(X509_new())};
    X509* cert = out.cert.get();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 7 * 86400);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    X509* issuer_cert = issuer ? issuer->cert.get() : cert;
    X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert));
    X509_set_pubkey(cert, out.key.get());
    for (const auto& [nid, value] : extensions) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer_cert, cert, nullptr, nullptr, 0);
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
        REQUIRE(ext != nullptr);
        X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(cert, issuer ? issuer->key.get() : out.key.get(), EVP_sha256());
    return out;
}

const std::vector<std::pair<int, std::string>> kCaExtensions = {
    {NID_basic_constraints, "critical,CA:TRUE"},
    {NID_key_usage, "critical,keyCertSign,cRLSign"},
    {NID_subject_key_identifier, "hash"}};

std::vector<std::pair<int, std::string>> leaf_extensions(const std::string& dns, const std::string& aia) {
    std::vector<std::pair<int, std::string>> out = {{NID_subject_alt_name, "DNS:" + dns},
                                                    {NID_basic_constraints, "CA:FALSE"}};
    if (!aia.empty()) out.push_back({NID_info_access, "OCSP;URI:" + aia});
    return out;
}

struct Pki {
    Issued ca = issue("test CA", nullptr, kCaExtensions, 1);
    Issued leaf = issue("leaf.test", &ca, leaf_extensions("leaf.test", "http://127.0.0.1:1/ocsp"), 10);
    Issued other = issue("other.test", &ca, leaf_extensions("other.test", "http://127.0.0.1:1/ocsp"), 11);
    Issued responder = issue("test OCSP responder", &ca,
                             {{NID_ext_key_usage, "OCSPSigning"}, {NID_basic_constraints, "CA:FALSE"}}, 20);
    Issued impostor = issue("test OCSP responder", &ca, {{NID_basic_constraints, "CA:FALSE"}}, 21); // no OCSPSigning
    Issued stranger = issue("test CA", nullptr, kCaExtensions, 1); // same name, other key
};

// A DER OCSPResponse about `leaf` signed by `signer`, times relative to the real clock.
std::string make_response(const Issued& signer, X509* leaf, X509* issuer, int status, long this_offset = -60,
                          long next_offset = 86400, int response_status = OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    if (response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        std::unique_ptr<OCSP_RESPONSE, ResponseFree> response(OCSP_response_create(response_status, nullptr));
        unsigned char* der = nullptr;
        int size = i2d_OCSP_RESPONSE(response.get(), &der);
        std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(size));
        OPENSSL_free(der);
        return out;
    }
    std::unique_ptr<OCSP_CERTID, CertIdFree> id(OCSP_cert_to_id(nullptr, leaf, issuer));
    std::unique_ptr<OCSP_BASICRESP, BasicFree> basic(OCSP_BASICRESP_new());
    TimePtr this_update(X509_gmtime_adj(nullptr, this_offset));
    TimePtr next_update(X509_gmtime_adj(nullptr, next_offset));
    TimePtr revoked_at(X509_gmtime_adj(nullptr, -7200));
    const bool revoked = status == V_OCSP_CERTSTATUS_REVOKED;
    REQUIRE(OCSP_basic_add1_status(basic.get(), id.get(), status, revoked ? OCSP_REVOKED_STATUS_KEYCOMPROMISE : 0,
                                   revoked ? revoked_at.get() : nullptr, this_update.get(), next_update.get()));
    REQUIRE(OCSP_basic_sign(basic.get(), signer.cert.get(), signer.key.get(), EVP_sha256(), nullptr, 0) == 1);
    std::unique_ptr<OCSP_RESPONSE, ResponseFree> response(
        OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
    unsigned char* der = nullptr;
    int size = i2d_OCSP_RESPONSE(response.get(), &der);
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(size));
    OPENSSL_free(der);
    return out;
}

// A server context with `leaf` and a chain of `chain`, as TlsContextSet builds them.
std::unique_ptr<SSL_CTX, SslCtxFree> context_with(const Issued& leaf, const std::vector<X509*>& chain) {
    std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_server_method()));
    REQUIRE(SSL_CTX_use_certificate(ctx.get(), leaf.cert.get()) == 1);
    for (X509* c : chain) REQUIRE(SSL_CTX_add1_chain_cert(ctx.get(), c) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(ctx.get(), leaf.key.get()) == 1);
    return ctx;
}

ocsp::Subject subject_of(const Issued& leaf, const Issued& ca) {
    auto ctx = context_with(leaf, {ca.cert.get()});
    auto found = ocsp::subject_for(ctx.get());
    REQUIRE(found.subject);
    return *found.subject;
}

} // namespace

TEST_CASE("refresh halfway to nextUpdate, within [5 min, 12 h]; backoff doubles to 1 h") {
    ocsp::Timing timing;
    CHECK(ocsp::refresh_delay(at(0), at(4 * 3600), timing) == 2h);
    CHECK(ocsp::refresh_delay(at(0), at(7 * 86400), timing) == 12h);          // capped
    CHECK(ocsp::refresh_delay(at(0), at(120), timing) == 5min);               // floored
    CHECK(ocsp::refresh_delay(at(0), at(-3600), timing) == 5min);             // already past: still floored
    CHECK(ocsp::refresh_delay(at(0), std::nullopt, timing) == 1h);            // no nextUpdate
    CHECK(ocsp::retry_delay(1, timing) == 1min);
    CHECK(ocsp::retry_delay(2, timing) == 2min);
    CHECK(ocsp::retry_delay(6, timing) == 32min);
    CHECK(ocsp::retry_delay(7, timing) == 1h);
    CHECK(ocsp::retry_delay(1000, timing) == 1h);
    timing.first_retry = 1s;
    CHECK(ocsp::retry_delay(3, timing) == 4s);
}

TEST_CASE("the book: good, failures with backoff, expiry, revoked") {
    StapleBook book;
    book.rebase({"A", "", "B"}, at(0));
    CHECK(book.due(at(0)) == std::vector<std::string>{"A", "B"});
    CHECK(book.staples() == std::vector<std::string>{"", "", ""});

    auto outcome = book.good("A", "staple-A", at(4 * 3600), at(0));
    CHECK(outcome.known);
    CHECK(outcome.before == StapleBook::State::pending);
    CHECK(outcome.next_fetch == 2h);
    CHECK(book.staples() == std::vector<std::string>{"staple-A", "", ""});
    CHECK(book.due(at(1)) == std::vector<std::string>{"B"});

    // B fails: 1 min, 2 min, 4 min ...
    CHECK(book.failed("B", at(0)).next_fetch == 1min);
    CHECK(book.due(at(59)).empty());
    CHECK(book.due(at(60)) == std::vector<std::string>{"B"});
    auto second = book.failed("B", at(60));
    CHECK(second.before == StapleBook::State::failing); // the stapler logs only the first
    CHECK(second.next_fetch == 2min);
    CHECK(book.next_event() == at(180));

    // A's refresh fails: the staple stays until its nextUpdate, then goes.
    CHECK(book.failed("A", at(2 * 3600)).before == StapleBook::State::good);
    CHECK(book.staples()[0] == "staple-A");
    CHECK(book.expire(at(4 * 3600)).empty());
    CHECK(book.expire(at(4 * 3600 + 1)) == std::vector<std::string>{"A"});
    CHECK(book.staples()[0].empty());

    // Revoked: never stapled, asked again later, logged once (before == revoked the next time).
    book.good("B", "staple-B", at(7200), at(300));
    auto revoked = book.revoked("B", at(7200), at(400));
    CHECK(revoked.before == StapleBook::State::good);
    CHECK(book.staples()[2].empty());
    CHECK(book.revoked("B", at(7200), at(5000)).before == StapleBook::State::revoked);
    CHECK(book.failed("B", at(6000)).before == StapleBook::State::revoked);
    CHECK(book.find("B")->state == StapleBook::State::revoked);
}

TEST_CASE("the book: a reload keeps staples of certificates still served; the newest set wins") {
    StapleBook book;
    book.rebase({"A", "B"}, at(0));
    book.good("A", "staple-A", at(86400), at(0));
    book.failed("B", at(0));

    // SIGHUP: B replaced by C, A still served (now second).
    book.rebase({"C", "A"}, at(10));
    CHECK(book.staples() == std::vector<std::string>{"", "staple-A"});
    CHECK(book.due(at(10)) == std::vector<std::string>{"C"}); // A keeps its schedule
    CHECK(book.find("B") == nullptr);

    // A fetch for B that was in flight during the reload lands afterwards: ignored.
    CHECK_FALSE(book.good("B", "staple-B", at(86400), at(11)).known);
    CHECK_FALSE(book.failed("B", at(11)).known);
    CHECK(book.staples() == std::vector<std::string>{"", "staple-A"});

    // A failing certificate is asked again at once on a reload.
    book.failed("C", at(12));
    CHECK(book.due(at(13)).empty());
    book.rebase({"C", "A"}, at(13));
    CHECK(book.due(at(13)) == std::vector<std::string>{"C"});

    // The same certificate twice: fetched once, stapled on both.
    book.rebase({"A", "A"}, at(20));
    CHECK(book.staples() == std::vector<std::string>{"staple-A", "staple-A"});
}

TEST_CASE("subject: responder URL, issuer from the chain, request for this certificate") {
    Pki pki;
    auto ctx = context_with(pki.leaf, {pki.ca.cert.get()});
    auto found = ocsp::subject_for(ctx.get());
    REQUIRE(found.subject);
    CHECK(found.subject->url == "http://127.0.0.1:1/ocsp");
    CHECK(found.subject->identity.size() > 40);
    CHECK(found.subject->identity != subject_of(pki.other, pki.ca).identity); // serial differs
    const auto* cursor = reinterpret_cast<const unsigned char*>(found.subject->request_der.data());
    std::unique_ptr<OCSP_REQUEST, RequestFree> request(
        d2i_OCSP_REQUEST(nullptr, &cursor, static_cast<long>(found.subject->request_der.size())));
    REQUIRE(request);
    CHECK(OCSP_request_onereq_count(request.get()) == 1);

    Issued bare = issue("bare.test", &pki.ca, leaf_extensions("bare.test", ""), 30);
    auto no_aia = ocsp::subject_for(context_with(bare, {pki.ca.cert.get()}).get());
    CHECK_FALSE(no_aia.subject);
    CHECK_FALSE(no_aia.warn);
    CHECK(no_aia.skipped.find("no OCSP responder") != std::string::npos);

    Issued tls_only = issue("https.test", &pki.ca, leaf_extensions("https.test", "https://ocsp.example/"), 31);
    auto https = ocsp::subject_for(context_with(tls_only, {pki.ca.cert.get()}).get());
    CHECK_FALSE(https.subject);
    CHECK(https.warn);
    CHECK(https.skipped.find("https://ocsp.example/") != std::string::npos);

    auto no_issuer = ocsp::subject_for(context_with(pki.leaf, {}).get());
    CHECK_FALSE(no_issuer.subject);
    CHECK(no_issuer.warn);
    CHECK(no_issuer.skipped.find("issuer") != std::string::npos);
}

TEST_CASE("verification: only a signed, current answer about this certificate counts") {
    Pki pki;
    const auto subject = subject_of(pki.leaf, pki.ca);
    X509* leaf = pki.leaf.cert.get();
    X509* ca = pki.ca.cert.get();
    const auto now = std::chrono::system_clock::now();

    SUBCASE("good, signed by the issuer") {
        auto verified = ocsp::verify_response(subject, make_response(pki.ca, leaf, ca, V_OCSP_CERTSTATUS_GOOD), now);
        CHECK(verified.ok);
        CHECK(verified.error == "");
        CHECK(verified.status == ocsp::CertStatus::good);
        REQUIRE(verified.next_update);
        CHECK(*verified.next_update > now + 23h);
        CHECK(verified.this_update < now);
    }
    SUBCASE("good, signed by a delegated responder") {
        auto verified =
            ocsp::verify_response(subject, make_response(pki.responder, leaf, ca, V_OCSP_CERTSTATUS_GOOD), now);
        CHECK(verified.ok);
        CHECK(verified.status == ocsp::CertStatus::good);
    }
    SUBCASE("revoked") {
        auto verified = ocsp::verify_response(subject, make_response(pki.ca, leaf, ca, V_OCSP_CERTSTATUS_REVOKED), now);
        CHECK(verified.ok);
        CHECK(verified.status == ocsp::CertStatus::revoked);
        CHECK(verified.revocation.find("revoked at ") == 0);
        CHECK(verified.revocation.find("keyCompromise") != std::string::npos);
    }
    SUBCASE("unknown") {
        auto verified = ocsp::verify_response(subject, make_response(pki.ca, leaf, ca, V_OCSP_CERTSTATUS_UNKNOWN), now);
        CHECK(verified.ok);
        CHECK(verified.status == ocsp::CertStatus::unknown);
    }
    SUBCASE("a responder certificate without OCSPSigning is not a delegate") {
        auto verified =
            ocsp::verify_response(subject, make_response(pki.impostor, leaf, ca, V_OCSP_CERTSTATUS_GOOD), now);
        CHECK_FALSE(verified.ok);
        CHECK(verified.error.find("not signed by the issuer") == 0);
    }
    SUBCASE("another key with the issuer's name") {
        auto verified =
            ocsp::verify_response(subject, make_response(pki.stranger, leaf, ca, V_OCSP_CERTSTATUS_GOOD), now);
        CHECK_FALSE(verified.ok);
        CHECK(verified.error.find("not signed by the issuer") == 0);
    }
    SUBCASE("about another certificate") {
        auto verified = ocsp::verify_response(
            subject, make_response(pki.ca, pki.other.cert.get(), ca, V_OCSP_CERTSTATUS_GOOD), now);
        CHECK_FALSE(verified.ok);
        CHECK(verified.error == "the response says nothing about this certificate");
    }
    SUBCASE("out of date, or from the future (beyond 5 min of skew)") {
        auto old = make_response(pki.ca, leaf, ca, V_OCSP_CERTSTATUS_GOOD, -7200, -600);
        auto verified = ocsp::verify_response(subject, old, now);
        CHECK_FALSE(verified.ok);
        CHECK(verified.error.find("out of date") == 0);
        auto recent = make_response(pki.ca, leaf, ca, V_OCSP_CERTSTATUS_GOOD, -7200, -120);
        CHECK(ocsp::verify_response(subject, recent, now).ok); // within the skew
        auto future = make_response(pki.ca, leaf, ca, V_OCSP_CERTSTATUS_GOOD, 900, 86400);
        verified = ocsp::verify_response(subject, future, now);
        CHECK_FALSE(verified.ok);
        CHECK(verified.error.find("in the future") != std::string::npos);
        // The injected clock decides, not the machine's.
        CHECK(ocsp::verify_response(subject, future, now + 1h).ok);
    }
    SUBCASE("unsuccessful responder status and garbage") {
        auto later = make_response(pki.ca, leaf, ca, 0, 0, 0, OCSP_RESPONSE_STATUS_TRYLATER);
        auto verified = ocsp::verify_response(subject, later, now);
        CHECK_FALSE(verified.ok);
        CHECK(verified.error.find("trylater") != std::string::npos);
        CHECK(ocsp::verify_response(subject, "not DER", now).error == "not a DER OCSP response");
    }
}

// ----------------------------------------------------------------- the stapler

namespace {

// A temp dir of PEM files TlsContextSet can load.
class Files {
public:
    Files() {
        char pattern[] = "/tmp/releasectl-ocsp-unit-XXXXXX";
        dir_ = ::mkdtemp(pattern);
    }
    ~Files() { fs::remove_all(dir_); }
    proxy::TlsCertificateFiles write(const std::string& name, const Issued& leaf, const Issued& ca) {
        proxy::TlsCertificateFiles files{dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key"};
        std::unique_ptr<FILE, FileClose> cert_file(std::fopen(files.cert_path.c_str(), "w"));
        PEM_write_X509(cert_file.get(), leaf.cert.get());
        PEM_write_X509(cert_file.get(), ca.cert.get());
        std::unique_ptr<FILE, FileClose> key_file(std::fopen(files.key_path.c_str(), "w"));
        PEM_write_PrivateKey(key_file.get(), leaf.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
        ::chmod(files.key_path.c_str(), 0600);
        return files;
    }

private:
    std::string dir_;
};

std::shared_ptr<const proxy::TlsContextSet> load(const std::vector<proxy::TlsCertificateFiles>& files) {
    auto loaded = proxy::TlsContextSet::load(files);
    REQUIRE_FALSE(loaded.error);
    return loaded.contexts;
}

// Answers like a responder that knows `pki`'s certificates, after `delay`.
struct FakeResponder {
    boost::asio::io_context& io;
    Pki& pki;
    std::chrono::milliseconds delay{20};
    bool down = false;
    int requests = 0;

    boost::asio::awaitable<HttpResult> answer(std::string request_der) {
        ++requests;
        boost::asio::steady_timer timer(io, delay);
        co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        HttpResult result;
        if (down) {
            result.error = "connection refused";
            co_return result;
        }
        // Whose serial is asked about decides what is answered.
        const auto* cursor = reinterpret_cast<const unsigned char*>(request_der.data());
        std::unique_ptr<OCSP_REQUEST, RequestFree> request(
            d2i_OCSP_REQUEST(nullptr, &cursor, static_cast<long>(request_der.size())));
        ASN1_INTEGER* serial = nullptr;
        OCSP_id_get0_info(nullptr, nullptr, nullptr, &serial, OCSP_onereq_get0_id(OCSP_request_onereq_get0(request.get(), 0)));
        const Issued& leaf = ASN1_INTEGER_get(serial) == 10 ? pki.leaf : pki.other;
        result.ok = true;
        result.status = 200;
        result.body = make_response(pki.ca, leaf.cert.get(), pki.ca.cert.get(), V_OCSP_CERTSTATUS_GOOD);
        co_return result;
    }
};

} // namespace

TEST_CASE("stapler: fetches, publishes the newest set only, keeps staples across a reload") {
    Pki pki;
    Files files;
    auto leaf_files = files.write("leaf", pki.leaf, pki.ca);
    auto other_files = files.write("other", pki.other, pki.ca);
    boost::asio::io_context io;
    FakeResponder responder{io, pki};
    std::vector<std::shared_ptr<const proxy::TlsContextSet>> published;
    OcspStapler::Options options;
    options.timing.first_retry = 50ms;
    options.fetch = [&](std::string, std::string request) { return responder.answer(std::move(request)); };
    OcspStapler stapler(io, options, [&](auto set) { published.push_back(std::move(set)); });

    auto run_for = [&](std::chrono::milliseconds duration) {
        io.restart();
        io.run_for(duration);
    };

    // The first set is returned as is (nothing to staple yet), then stapled.
    auto a = load({leaf_files});
    auto served = stapler.watch(a);
    CHECK(served == a);
    run_for(200ms);
    REQUIRE(published.size() == 1);
    CHECK(published[0]->same_contexts(*a));
    const std::string staple = published[0]->staple(0);
    CHECK_FALSE(staple.empty());

    // A reload of the same certificate: the staple is there at once.
    auto a2 = load({leaf_files});
    served = stapler.watch(a2);
    CHECK(served->same_contexts(*a2));
    CHECK(served->staple(0) == staple);
    run_for(100ms);
    CHECK(published.size() == 1); // nothing to fetch: the staple is fresh

    // A reload to another certificate (the leaf's staple goes with it) and,
    // while the fetch for that set is in flight, one to both: only sets built
    // on the newest base are ever published.
    responder.delay = 100ms;
    auto b = load({other_files});
    auto c = load({leaf_files, other_files});
    stapler.watch(b);
    boost::asio::steady_timer reload(io, 30ms);
    reload.async_wait([&](const boost::system::error_code&) { served = stapler.watch(c); });
    run_for(600ms);
    CHECK(served->staple(0).empty()); // b did not serve the leaf: its staple was forgotten
    REQUIRE(published.size() >= 2);
    for (std::size_t i = 1; i < published.size(); ++i) CHECK(published[i]->same_contexts(*c));
    CHECK_FALSE(published.back()->staple(0).empty());
    CHECK_FALSE(published.back()->staple(1).empty());

    // The responder goes down: the staples stay (they are valid for a day).
    responder.down = true;
    auto before = published.size();
    auto d = load({leaf_files, other_files});
    served = stapler.watch(d);
    run_for(300ms);
    CHECK(published.size() == before);
    CHECK_FALSE(served->staple(0).empty());
    CHECK_FALSE(served->staple(1).empty());

    stapler.stop();
    const int requests = responder.requests;
    run_for(300ms);
    CHECK(responder.requests == requests); // no fetching after stop
}
