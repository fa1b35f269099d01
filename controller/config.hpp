#pragma once
// releasectl's configuration: one TOML file, every key defaulted. Parsing lives
// in config.cpp (toml++); everything downstream takes these plain structs.
#include "proxy/settings.hpp"
#include "proxy/upstream_tls.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace releasectl {

using proxy::Duration;

struct SlotConfig {
    std::string name;                 // "blue", "green"
    proxy::UpstreamAddress upstream;  // [slots.<name>] upstream
    // https:// upstreams: tls_verify, tls_ca_bundle, tls_server_name, and the
    // client built from them by load_upstream_tls (tls_loader.hpp).
    proxy::UpstreamTlsSettings tls = {};
    std::string tls_location = {};    // "releasectl.toml:12:1": tls_ca_bundle, else the slot's table
    std::shared_ptr<const proxy::UpstreamTlsClient> upstream_tls = nullptr;
};

struct RoutingConfig {
    bool sticky = true;
    std::string override_header = "X-Release-Slot";
    std::string sticky_cookie = "releasectl_bucket";
};

struct AppConfig {
    bool configured = false;          // [app] table present
    std::string command;              // "bin/server --port ${PORT}" (releasectl runs it)
    std::string start;                // alternatively: hooks for an external supervisor
    std::string stop;
    std::string health_path = "/up";
    Duration health_interval{1'000};
    Duration health_timeout{2'000};
    unsigned healthy_threshold = 2;   // consecutive 2xx to become healthy
    unsigned unhealthy_threshold = 3; // consecutive failures to become unhealthy
    Duration start_timeout{60'000};   // time to become healthy after start
    Duration stop_timeout{10'000};    // SIGTERM .. SIGKILL
    std::string env_file;             // relative to the release dir, optional
    std::string before_activate;      // hook run in the new release before traffic moves
    Duration before_activate_timeout{300'000};
    unsigned max_restarts = 5;        // within restart_window, then reported as crashing
    Duration restart_window{300'000};
    std::uint64_t log_max_bytes = 10ull * 1024 * 1024;
    unsigned log_keep = 3;
};

enum class Strategy { canary, blue_green };

struct RolloutConfig {
    Strategy strategy = Strategy::canary;
    std::vector<unsigned> steps{10, 25, 50, 75, 100};
    std::vector<unsigned> pause_before{};     // steps that wait for `promote`
    Duration step_duration{300'000};
    Duration max_step_duration{1'800'000};    // inconclusive this long -> pause for a human
    Duration check_interval{10'000};
    std::uint64_t min_requests = 100;
    double max_error_rate = 0.05;
    Duration max_p95{2'000};
    std::optional<double> max_error_rate_increase; // vs live slot, absolute (0.02 = +2 pp)
    std::optional<double> max_p95_ratio;           // vs live slot (1.5 = 50 % slower)
    unsigned failure_threshold = 2;
    Duration rollback_window{600'000};
    bool blue_green_wait_for_promote = false;
    enum class OnCrash { resume, rollback } on_crash = OnCrash::resume;
};

struct MetricsConfig {
    std::string listen = "127.0.0.1:9180"; // empty = off
    std::string bearer_token;              // optional, protects /metrics
};

struct AdminConfig {
    std::string socket;        // default: <root>/.releasectl/admin.sock
    std::string tcp_listen;    // optional; requires token
    std::string token;
};

struct ReleasesConfig {
    unsigned keep = 5;
    std::vector<std::string> shared; // paths linked from <root>/shared into each release
};

struct NotifyConfig {
    std::string url; // http://host:port/path (POST JSON)
    Duration timeout{5'000};
};

struct AnalysisConfig {
    std::string source = "builtin"; // or "prometheus"
    std::string prometheus_url;
    // PromQL templates; ${slot} and ${window} (e.g. "10s") are substituted.
    std::string requests_query =
        R"(sum(increase(releasectl_requests_total{slot="${slot}"}[${window}])))";
    std::string errors_query =
        R"(sum(increase(releasectl_requests_total{slot="${slot}",code="5xx"}[${window}])))";
    std::string p95_query =
        R"(histogram_quantile(0.95, sum by (le) (rate(releasectl_request_duration_seconds_bucket{slot="${slot}"}[${window}]))))";
};

struct LogConfig {
    std::string level = "info";
    bool access_log = true;
    std::string access_log_path; // empty = stdout
};

// [tls.acme]: one certificate for `domains`, ordered and renewed over ACME
// (RFC 8555) with HTTP-01 challenges answered by the plain listeners.
struct AcmeConfig {
    bool enabled = false;                   // [tls.acme] present
    std::string directory;                  // the CA's https:// directory URL
    std::vector<std::string> domains;       // the first names the files and the CN
    std::string email;                      // optional account contact
    std::string storage;                    // default <root>/.releasectl/acme
    std::string ca_bundle;                  // PEM to trust for the directory (private CA, tests)
    Duration renew_before{30LL * 24 * 3600 * 1000};
    Duration retry_interval{60'000};        // after a failed order
    Duration check_interval{12LL * 3600 * 1000}; // how often the certificate's lifetime is looked at
    std::string location;                   // "file:line:column" of [tls.acme]

    std::string certificate_path() const;  // <storage>/<domains[0]>.pem (full chain)
    std::string key_path() const;           // <storage>/<domains[0]>.key
    std::string account_key_path() const;   // <storage>/account.key
};

// [[tls.certificates]]: the paths themselves live in proxy.certificates (the
// proxy's settings); this remembers where each was written, so a file that
// cannot be used is reported as "file:line:column: tls.certificates[i].key: ...".
struct TlsConfig {
    struct Locations {
        std::string cert; // "releasectl.toml:42:8"
        std::string key;
    };
    std::vector<Locations> certificate_locations; // index == proxy.certificates index
    AcmeConfig acme;
    // OCSP stapling for certificates that name an http:// responder (AIA).
    bool ocsp_stapling = true;
    Duration ocsp_retry_interval{60'000}; // first retry after a failed fetch; doubles up to 1h
};

struct Config {
    std::string path;        // file this came from
    std::string root = "/var/lib/releasectl/app";
    proxy::ProxySettings proxy;
    std::vector<SlotConfig> slots;               // declaration order; blue, green by default
    std::map<std::string, unsigned> weights;     // [weights]
    RoutingConfig routing;
    AppConfig app;
    RolloutConfig rollout;
    MetricsConfig metrics;
    AdminConfig admin;
    ReleasesConfig releases;
    std::vector<NotifyConfig> notify;
    AnalysisConfig analysis;
    LogConfig log;
    TlsConfig tls;

    int slot_index(std::string_view name) const;
    std::string admin_socket_path() const; // admin.socket or <root>/.releasectl/admin.sock
    std::string state_dir() const;         // <root>/.releasectl
};

// A config problem: what() is "file:line:column: key: message".
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Throws ConfigError (startup is where exceptions belong).
Config load_config(const std::string& path);
Config parse_config(std::string_view toml_text, const std::string& source_name);

} // namespace releasectl
