// [proxy] listen_tls / redirect_http / security_headers and [[tls.certificates]]:
// parsing and the cross-checks `releasectl check` reports (files are read
// later, by controller/tls_loader; see tests/integration/test_tls.py).
#include "controller/config.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

using namespace releasectl;

namespace {

std::string error_of(const std::string& toml) {
    try {
        parse_config(toml, "/etc/releasectl/app.toml");
    } catch (const ConfigError& error) {
        return error.what();
    }
    return "(no error)";
}

const proxy::SecurityHeader* header_named(const Config& c, std::string_view name) {
    for (const auto& h : c.proxy.security_headers)
        if (h.name == name) return &h;
    return nullptr;
}

} // namespace

TEST_CASE("TLS is off by default and the security headers have their defaults") {
    Config c = parse_config("", "/etc/releasectl/app.toml");
    CHECK(c.proxy.listen_tls.empty());
    CHECK(c.proxy.certificates.empty());
    CHECK_FALSE(c.proxy.redirect_http);
    REQUIRE(c.proxy.security_headers.size() == 3);
    REQUIRE(header_named(c, "Strict-Transport-Security"));
    CHECK(header_named(c, "Strict-Transport-Security")->value == "max-age=31536000");
    CHECK(header_named(c, "Strict-Transport-Security")->https_only);
    CHECK(header_named(c, "X-Content-Type-Options")->value == "nosniff");
    CHECK(header_named(c, "X-Frame-Options")->value == "DENY");
    CHECK_FALSE(header_named(c, "X-Frame-Options")->https_only);
}

TEST_CASE("HTTPS listeners, redirect and certificates parse; paths resolve next to the file") {
    Config c = parse_config(R"([proxy]
listen = ["0.0.0.0:80"]
listen_tls = ["0.0.0.0:443", "[::]:443"]
redirect_http = true
tls_handshake_timeout = "3s"

[[tls.certificates]]
cert = "tls/example.pem"
key = "/secure/example.key"

[[tls.certificates]]
cert = "/secure/wild.pem"
key = "tls/wild.key"
)",
                            "/etc/releasectl/app.toml");
    REQUIRE(c.proxy.listen_tls.size() == 2);
    CHECK(c.proxy.listen_tls[1].to_string() == "[::]:443");
    CHECK(c.proxy.redirect_http);
    CHECK(c.proxy.timeouts.tls_handshake == std::chrono::seconds(3));
    REQUIRE(c.proxy.certificates.size() == 2);
    CHECK(c.proxy.certificates[0].cert_path == "/etc/releasectl/tls/example.pem");
    CHECK(c.proxy.certificates[0].key_path == "/secure/example.key");
    CHECK(c.proxy.certificates[1].key_path == "/etc/releasectl/tls/wild.key");
    REQUIRE(c.tls.certificate_locations.size() == 2);
    CHECK(c.tls.certificate_locations[0].cert == "/etc/releasectl/app.toml:8:8");
    CHECK(c.tls.certificate_locations[1].key == "/etc/releasectl/app.toml:13:7");
}

TEST_CASE("HTTPS listeners without a certificate are an error naming the key") {
    auto error = error_of("[proxy]\nlisten_tls = [\"127.0.0.1:8443\"]\n");
    CHECK(error.find("/etc/releasectl/app.toml:2:") == 0);
    CHECK(error.find("proxy.listen_tls") != std::string::npos);
    CHECK(error.find("[[tls.certificates]]") != std::string::npos);
}

TEST_CASE("redirect_http needs an HTTPS listener") {
    auto error = error_of("[proxy]\nredirect_http = true\n");
    CHECK(error.find("proxy.redirect_http") != std::string::npos);
    CHECK(error.find("listen_tls") != std::string::npos);
}

TEST_CASE("one address cannot be both plain and HTTPS") {
    auto error = error_of(R"([proxy]
listen = ["127.0.0.1:8080"]
listen_tls = ["127.0.0.1:8080"]
[[tls.certificates]]
cert = "/a.pem"
key = "/a.key"
)");
    CHECK(error.find("127.0.0.1:8080 is also in proxy.listen") != std::string::npos);
}

TEST_CASE("a certificate entry needs cert and key, and nothing else") {
    CHECK(error_of("[[tls.certificates]]\ncert = \"/a.pem\"\n").find("tls.certificates[0].key: missing") !=
          std::string::npos);
    CHECK(error_of("[[tls.certificates]]\nkey = \"/a.key\"\n").find("tls.certificates[0].cert: missing") !=
          std::string::npos);
    CHECK(error_of("[[tls.certificates]]\ncert = \"/a.pem\"\nkey = \"/a.key\"\nchain = \"/c.pem\"\n")
              .find("tls.certificates[0].chain: unknown key") != std::string::npos);
    CHECK(error_of("[tls]\ncertificates = \"/a.pem\"\n").find("expected [[tls.certificates]]") != std::string::npos);
}

TEST_CASE("security headers: \"\" turns one off, names are case-insensitive, typos are errors") {
    Config c = parse_config(R"([proxy.security_headers]
x-frame-options = "SAMEORIGIN"
Strict-Transport-Security = ""
Referrer-Policy = "no-referrer"
)",
                            "/etc/releasectl/app.toml");
    CHECK(header_named(c, "Strict-Transport-Security") == nullptr);
    REQUIRE(header_named(c, "X-Frame-Options"));
    CHECK(header_named(c, "X-Frame-Options")->value == "SAMEORIGIN");
    REQUIRE(header_named(c, "Referrer-Policy"));
    CHECK_FALSE(header_named(c, "Referrer-Policy")->https_only);
    CHECK(header_named(c, "X-Content-Type-Options")->value == "nosniff");

    auto error = error_of("[proxy.security_headers]\nX-Frame-Option = \"DENY\"\n");
    CHECK(error.find("proxy.security_headers.X-Frame-Option: unknown security header") != std::string::npos);
    error = error_of("[proxy.security_headers]\nX-Frame-Options = \"DENY\\r\\nX: y\"\n");
    CHECK(error.find("control characters") != std::string::npos);
}

TEST_CASE("https:// upstreams: tls_* keys parse, resolve and are refused on plain upstreams") {
    Config c = parse_config(R"(
[slots.blue]
upstream = "https://127.0.0.1:9443"
tls_ca_bundle = "tls/ca.pem"
tls_server_name = "app.internal"
[slots.green]
upstream = "https://127.0.0.1:9444"
tls_verify = false
)", "/etc/releasectl/app.toml");
    REQUIRE(c.slots.size() == 2);
    CHECK(c.slots[0].upstream.tls);
    CHECK(c.slots[0].tls.verify);
    CHECK(c.slots[0].tls.ca_bundle == "/etc/releasectl/tls/ca.pem");
    CHECK(c.slots[0].tls.server_name == "app.internal");
    CHECK(c.slots[0].tls_location == "/etc/releasectl/app.toml:4:17");
    CHECK_FALSE(c.slots[1].tls.verify);
    CHECK(c.slots[1].tls.ca_bundle.empty());

    CHECK(error_of("[slots.blue]\nupstream = \"127.0.0.1:9001\"\ntls_verify = false\n") ==
          "/etc/releasectl/app.toml:3:14: slots.blue.tls_verify: only for an https:// upstream "
          "(this slot's is 127.0.0.1:9001)");
    CHECK(error_of("[slots.blue]\nupstream = \"https://127.0.0.1:9443\"\ntls_server_name = \"a.example:443\"\n")
              .find("slots.blue.tls_server_name: a host name") != std::string::npos);
    CHECK(error_of("[slots.blue]\nupstream = \"https://127.0.0.1:9443\"\ntls_ca = \"x\"\n")
              .find("unknown key") != std::string::npos);
    // http:// and https:// to one port is still the same upstream.
    CHECK(error_of("[slots.blue]\nupstream = \"https://127.0.0.1:9443\"\n[slots.green]\nupstream = \"127.0.0.1:9443\"\n")
              .find("same upstream as slots.blue") != std::string::npos);
}

TEST_CASE("OCSP stapling is on by default; [tls] ocsp_stapling = false turns it off") {
    Config c = parse_config("", "/etc/releasectl/app.toml");
    CHECK(c.tls.ocsp_stapling);
    CHECK(c.tls.ocsp_retry_interval == std::chrono::minutes(1));
    c = parse_config(R"([tls]
ocsp_stapling = false
ocsp_retry_interval = "5s"
[[tls.certificates]]
cert = "/a.pem"
key = "/a.key"
)", "/etc/releasectl/app.toml");
    CHECK_FALSE(c.tls.ocsp_stapling);
    CHECK(c.tls.ocsp_retry_interval == std::chrono::seconds(5));
    CHECK(c.proxy.certificates.size() == 1);

    auto error = error_of("[tls]\nocsp_stapling = \"yes\"\n");
    CHECK(error.find("/etc/releasectl/app.toml:2:") == 0);
    CHECK(error.find("tls.ocsp_stapling: expected a boolean") != std::string::npos);
    CHECK(error_of("[tls]\nocsp_retry_interval = \"0s\"\n").find("tls.ocsp_retry_interval: must be greater than zero") !=
          std::string::npos);
    error = error_of("[tls]\nocsp = true\n");
    CHECK(error.find("tls.ocsp: unknown key") != std::string::npos);
    CHECK(error.find("ocsp_stapling") != std::string::npos);
}
