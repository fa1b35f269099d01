#include "controller/config.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace releasectl;
using namespace std::chrono_literals;

namespace {

// The error text of a config that must not load.
std::string error_of(const std::string& toml) {
    try {
        parse_config(toml, "/etc/releasectl/app.toml");
    } catch (const ConfigError& error) {
        return error.what();
    }
    return "(no error)";
}

} // namespace

TEST_CASE("an empty config is all defaults") {
    Config c = parse_config("", "/etc/releasectl/app.toml");
    CHECK(c.path == "/etc/releasectl/app.toml");
    CHECK(c.root == "/var/lib/releasectl/app");
    REQUIRE(c.slots.size() == 2);
    CHECK(c.slots[0].name == "blue");
    CHECK(c.slots[0].upstream.to_string() == "127.0.0.1:9001");
    CHECK(c.slots[1].name == "green");
    CHECK(c.slots[1].upstream.to_string() == "127.0.0.1:9002");
    CHECK(c.weights.at("blue") == 100);
    CHECK(c.weights.at("green") == 0);
    CHECK_FALSE(c.app.configured);
    CHECK(c.rollout.steps == std::vector<unsigned>{10, 25, 50, 75, 100});
    CHECK(c.rollout.step_duration == 5min);
    CHECK(c.rollout.max_p95 == 2s);
    CHECK(c.metrics.listen == "127.0.0.1:9180");
    CHECK(c.admin_socket_path() == "/var/lib/releasectl/app/.releasectl/admin.sock");
    CHECK(c.state_dir() == "/var/lib/releasectl/app/.releasectl");
    CHECK(c.analysis.requests_query.find("${slot}") != std::string::npos);
}

TEST_CASE("the design's example shape parses") {
    Config c = parse_config(R"(
root = "/srv/myapp"
[proxy]
listen = ["0.0.0.0:8080", "[::1]:8081"]
workers = 3
max_body_size = "10MiB"
max_uri_size = 4096
request_head_timeout = "250ms"
upstream_max_idle = 4
trusted_proxies = ["10.0.0.0/8"]
[slots.green]
upstream = "127.0.0.1:9102"
[slots.blue]
upstream = "unix:/run/myapp/blue.sock"
[weights]
green = 100
[routing]
sticky = false
override_header = "X-Slot"
[app]
command = "bin/server --port ${PORT}"
health_path = "/healthz"
healthy_threshold = 1
log_max_bytes = "1MiB"
before_activate = "bin/migrate"
[rollout]
strategy = "blue-green"
steps = [5, 100]
pause_before = [100]
step_duration = "30s"
check_interval = "1s"
min_requests = 0
max_error_rate = 0
max_p95 = "500ms"
max_error_rate_increase = 0.02
max_p95_ratio = 1.5
failure_threshold = 3
rollback_window = "0s"
wait_for_promote = true
on_crash = "rollback"
[metrics]
listen = ""
token = "secret"
[admin]
socket = "run/admin.sock"
listen = "127.0.0.1:9181"
token = "t0ken"
[releases]
keep = 3
shared = ["storage", "config/database.yml"]
[[notify]]
url = "http://127.0.0.1:9000/a"
[[notify]]
url = "http://127.0.0.1:9000/b"
timeout = "1s"
[analysis]
source = "prometheus"
prometheus_url = "http://127.0.0.1:9090"
[log]
level = "debug"
access_log = false
access_log_path = "/var/log/releasectl/access.log"
)", "/etc/releasectl/app.toml");
    CHECK(c.root == "/srv/myapp");
    REQUIRE(c.proxy.listen.size() == 2);
    CHECK(c.proxy.listen[1].host == "::1");
    CHECK(c.proxy.listen[1].port == 8081);
    CHECK(c.proxy.workers == 3);
    CHECK(c.proxy.limits.max_body_bytes == 10u * 1024 * 1024);
    CHECK(c.proxy.limits.max_uri_bytes == 4096);
    CHECK(c.proxy.timeouts.request_head == 250ms);
    CHECK(c.proxy.upstream_max_idle_per_slot == 4);
    CHECK(c.proxy.trusted_proxies == std::vector<std::string>{"10.0.0.0/8"});
    // declaration order, not alphabetical
    REQUIRE(c.slots.size() == 2);
    CHECK(c.slots[0].name == "green");
    CHECK(c.slots[1].name == "blue");
    CHECK(c.slots[1].upstream.kind == proxy::UpstreamAddress::Kind::unix_socket);
    CHECK(c.slot_index("blue") == 1);
    CHECK(c.slot_index("red") == -1);
    CHECK(c.weights.at("green") == 100);
    CHECK(c.weights.at("blue") == 0);
    CHECK_FALSE(c.routing.sticky);
    CHECK(c.routing.override_header == "X-Slot");
    CHECK(c.app.configured);
    CHECK(c.app.command == "bin/server --port ${PORT}");
    CHECK(c.app.health_path == "/healthz");
    CHECK(c.app.healthy_threshold == 1);
    CHECK(c.app.log_max_bytes == 1024 * 1024);
    CHECK(c.app.before_activate == "bin/migrate");
    CHECK(c.rollout.strategy == Strategy::blue_green);
    CHECK(c.rollout.steps == std::vector<unsigned>{5, 100});
    CHECK(c.rollout.pause_before == std::vector<unsigned>{100});
    CHECK(c.rollout.step_duration == 30s);
    CHECK(c.rollout.check_interval == 1s);
    CHECK(c.rollout.min_requests == 0);
    CHECK(c.rollout.max_error_rate == 0.0);
    CHECK(c.rollout.max_p95 == 500ms);
    CHECK(c.rollout.max_error_rate_increase == doctest::Approx(0.02));
    CHECK(c.rollout.max_p95_ratio == doctest::Approx(1.5));
    CHECK(c.rollout.failure_threshold == 3);
    CHECK(c.rollout.rollback_window == 0ms);
    CHECK(c.rollout.blue_green_wait_for_promote);
    CHECK(c.rollout.on_crash == RolloutConfig::OnCrash::rollback);
    CHECK(c.metrics.listen.empty());
    CHECK(c.metrics.bearer_token == "secret");
    CHECK(c.admin.socket == "/etc/releasectl/run/admin.sock"); // relative to the file
    CHECK(c.admin_socket_path() == "/etc/releasectl/run/admin.sock");
    CHECK(c.admin.tcp_listen == "127.0.0.1:9181");
    CHECK(c.releases.keep == 3);
    CHECK(c.releases.shared.size() == 2);
    REQUIRE(c.notify.size() == 2);
    CHECK(c.notify[0].timeout == 5s);
    CHECK(c.notify[1].url == "http://127.0.0.1:9000/b");
    CHECK(c.notify[1].timeout == 1s);
    CHECK(c.analysis.source == "prometheus");
    CHECK(c.log.level == "debug");
    CHECK_FALSE(c.log.access_log);
    CHECK_FALSE(c.proxy.access_log);
    CHECK(c.proxy.access_log_path == "/var/log/releasectl/access.log");
}

TEST_CASE("a relative root is relative to the config file's directory") {
    CHECK(parse_config("root = \"myapp\"", "/etc/releasectl/app.toml").root == "/etc/releasectl/myapp");
    CHECK(parse_config("root = \"../data/./app/\"", "/etc/releasectl/app.toml").root == "/etc/data/app");
}

TEST_CASE("errors name file:line:column and the full dotted key") {
    SUBCASE("unknown top-level key") {
        CHECK(error_of("root = \"/x\"\nrolout = 1\n").rfind("/etc/releasectl/app.toml:2:1: rolout: unknown key", 0) == 0);
    }
    SUBCASE("typo inside a section") {
        const std::string e = error_of("[rollout]\nsteps = [10, 100]\n  step_duraton = \"5m\"\n");
        CHECK(e.rfind("/etc/releasectl/app.toml:3:3: rollout.step_duraton: unknown key", 0) == 0);
        CHECK(e.find("step_duration") != std::string::npos); // lists the known keys
    }
    SUBCASE("a trusted proxy that is not an address or CIDR") {
        const std::string e = error_of("[proxy]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/99\"]\n");
        CHECK(e.rfind("/etc/releasectl/app.toml:2:19: proxy.trusted_proxies: ", 0) == 0);
        CHECK(e.find("10.0.0.0/99") != std::string::npos);
    }
    SUBCASE("typo inside a slot") {
        CHECK(error_of("[slots.blue]\nupstream = \"127.0.0.1:1\"\nupstraem = \"x\"\n")
                  .rfind("/etc/releasectl/app.toml:3:1: slots.blue.upstraem: unknown key", 0) == 0);
    }
    SUBCASE("wrong type names the expected type") {
        CHECK(error_of("[proxy]\nworkers = \"4\"\n") == "/etc/releasectl/app.toml:2:11: proxy.workers: expected an integer");
        CHECK(error_of("[routing]\nsticky = 1\n") ==
              "/etc/releasectl/app.toml:2:10: routing.sticky: expected a boolean (true or false)");
        CHECK(error_of("[rollout]\nstep_duration = 300\n").find("rollout.step_duration: expected a duration string") !=
              std::string::npos);
        CHECK(error_of("[proxy]\nlisten = \"0.0.0.0:80\"\n").find("2:10: proxy.listen: expected an array") !=
              std::string::npos);
        CHECK(error_of("[proxy]\nlisten = [\"0.0.0.0:80\", 81]\n") ==
              "/etc/releasectl/app.toml:2:25: proxy.listen[1]: expected a string");
    }
    SUBCASE("bad values") {
        CHECK(error_of("[rollout]\nstep_duration = \"5 minutes\"\n").find("rollout.step_duration: invalid duration") !=
              std::string::npos);
        CHECK(error_of("[proxy]\nmax_body_size = \"lots\"\n").find("proxy.max_body_size: invalid size") !=
              std::string::npos);
        CHECK(error_of("[rollout]\nmax_error_rate = 1.5\n").find("2:18: rollout.max_error_rate: must be between 0 and 1") !=
              std::string::npos);
        CHECK(error_of("[rollout]\nfailure_threshold = 0\n").find("rollout.failure_threshold: must be between 1") !=
              std::string::npos);
        CHECK(error_of("[rollout]\nstrategy = \"linear\"\n").find("rollout.strategy: unknown value \"linear\"") !=
              std::string::npos);
        CHECK(error_of("[rollout]\non_crash = \"panic\"\n").find("rollout.on_crash: unknown value") != std::string::npos);
        CHECK(error_of("[proxy]\nlisten = [\"nowhere\"]\n").find("proxy.listen[0]: invalid listen address") !=
              std::string::npos);
        CHECK(error_of("[log]\nlevel = \"loud\"\n").find("log.level: unknown level") != std::string::npos);
    }
    SUBCASE("steps") {
        CHECK(error_of("[rollout]\nsteps = [10, 50, 25, 100]\n").find("rollout.steps: must be strictly increasing") !=
              std::string::npos);
        CHECK(error_of("[rollout]\nsteps = [10, 50]\n").find("rollout.steps: the last step must be 100") !=
              std::string::npos);
        CHECK(error_of("[rollout]\nsteps = [0, 100]\n").find("rollout.steps[0]: must be between 1 and 100") !=
              std::string::npos);
        CHECK(error_of("[rollout]\nsteps = [10, 101]\n").find("rollout.steps[1]") != std::string::npos);
        CHECK(error_of("[rollout]\nsteps = []\n").find("rollout.steps: needs at least one step") != std::string::npos);
        CHECK(error_of("[rollout]\npause_before = [30]\n").find("rollout.pause_before: 30 is not one of the steps") !=
              std::string::npos);
        CHECK(error_of("[rollout]\nstep_duration = \"1h\"\nmax_step_duration = \"30m\"\n")
                  .find("3:21: rollout.max_step_duration: must be at least step_duration") != std::string::npos);
    }
    SUBCASE("slots and weights") {
        CHECK(error_of("[slots.blue]\n").find("slots.blue.upstream: missing") != std::string::npos);
        CHECK(error_of("[slots.blue]\nupstream = \"127.0.0.1:1\"\n[slots.green]\nupstream = \"127.0.0.1:1\"\n")
                  .find("4:12: slots.green.upstream: same upstream as slots.blue") != std::string::npos);
        std::string nine;
        for (int i = 0; i < 9; ++i) nine += "[slots.s" + std::to_string(i) + "]\nupstream = \"127.0.0.1:" +
                                            std::to_string(9000 + i) + "\"\n";
        CHECK(error_of(nine).find("slots: at most 8 slots (got 9)") != std::string::npos);
        CHECK(error_of("[weights]\nblue = 50\nred = 50\n").find("3:1: weights.red: unknown slot (slots: blue, green)") !=
              std::string::npos);
        CHECK(error_of("[weights]\nblue = 0\ngreen = 0\n").find("weights: all weights are zero") != std::string::npos);
        CHECK(error_of("[weights]\nblue = -1\n").find("weights.blue: must be between 0 and 100") != std::string::npos);
    }
    SUBCASE("cross-key rules") {
        CHECK(error_of("[app]\ncommand = \"a\"\nstart = \"b\"\n").find("3:9: app.start: app.command and app.start are "
                                                                         "mutually exclusive") != std::string::npos);
        CHECK(error_of("[app]\nstop = \"b\"\n").find("app.stop: app.stop only applies together with app.start") !=
              std::string::npos);
        CHECK(error_of("[app]\nhealth_path = \"up\"\n").find("app.health_path: must start with '/'") != std::string::npos);
        CHECK(error_of("[admin]\nlisten = \"127.0.0.1:9181\"\n").find("2:10: admin.listen: a TCP admin listener needs "
                                                                        "admin.token") != std::string::npos);
        CHECK(error_of("[analysis]\nsource = \"prometheus\"\n").find("analysis.prometheus_url: required") !=
              std::string::npos);
        CHECK(error_of("[[notify]]\ntimeout = \"1s\"\n").find("notify[0].url: missing") != std::string::npos);
        CHECK(error_of("[[notify]]\nurl = \"https://x\"\n").find("notify[0].url: must be an http:// URL") !=
              std::string::npos);
        CHECK(error_of("[[notify]]\nurl = \"http://x\"\nurll = 1\n").find("3:1: notify[0].urll: unknown key") !=
              std::string::npos);
        CHECK(error_of("[releases]\nshared = [\"../etc\"]\n").find("releases.shared[0]: must be a relative path") !=
              std::string::npos);
    }
    SUBCASE("syntax errors carry the position too") {
        CHECK(error_of("[rollout\n").rfind("/etc/releasectl/app.toml:1:", 0) == 0);
        CHECK(error_of("a = = 1\n").rfind("/etc/releasectl/app.toml:1:", 0) == 0);
    }
}

TEST_CASE("releasectl.example.toml parses and matches the defaults") {
    Config example = load_config(std::string(RELEASECTL_SOURCE_ROOT) + "/releasectl.example.toml");
    Config defaults = parse_config("", std::string(RELEASECTL_SOURCE_ROOT) + "/releasectl.example.toml");
    CHECK(example.root == defaults.root);
    CHECK(example.slots.size() == defaults.slots.size());
    CHECK(example.weights == defaults.weights);
    CHECK(example.proxy.listen.size() == 1);
    CHECK(example.proxy.listen[0].to_string() == defaults.proxy.listen[0].to_string());
    CHECK(example.proxy.limits.max_uri_bytes == defaults.proxy.limits.max_uri_bytes);
    CHECK(example.proxy.limits.max_header_bytes == defaults.proxy.limits.max_header_bytes);
    CHECK(example.proxy.limits.max_body_bytes == defaults.proxy.limits.max_body_bytes);
    CHECK(example.proxy.limits.max_response_header_bytes == defaults.proxy.limits.max_response_header_bytes);
    CHECK(example.proxy.timeouts.request_head == defaults.proxy.timeouts.request_head);
    CHECK(example.proxy.timeouts.request_body == defaults.proxy.timeouts.request_body);
    CHECK(example.proxy.timeouts.keepalive_idle == defaults.proxy.timeouts.keepalive_idle);
    CHECK(example.proxy.timeouts.upstream_read == defaults.proxy.timeouts.upstream_read);
    CHECK(example.proxy.timeouts.tunnel_idle == defaults.proxy.timeouts.tunnel_idle);
    CHECK(example.proxy.timeouts.drain == defaults.proxy.timeouts.drain);
    CHECK(example.proxy.timeouts.client_write == defaults.proxy.timeouts.client_write);
    CHECK(example.rollout.steps == defaults.rollout.steps);
    CHECK(example.rollout.step_duration == defaults.rollout.step_duration);
    CHECK(example.rollout.max_step_duration == defaults.rollout.max_step_duration);
    CHECK(example.rollout.check_interval == defaults.rollout.check_interval);
    CHECK(example.rollout.rollback_window == defaults.rollout.rollback_window);
    CHECK(example.rollout.max_error_rate == defaults.rollout.max_error_rate);
    CHECK(example.rollout.failure_threshold == defaults.rollout.failure_threshold);
    CHECK(example.analysis.requests_query == defaults.analysis.requests_query);
    CHECK(example.analysis.errors_query == defaults.analysis.errors_query);
    CHECK(example.analysis.p95_query == defaults.analysis.p95_query);
    CHECK(example.metrics.listen == defaults.metrics.listen);
    CHECK(example.releases.keep == defaults.releases.keep);
    CHECK(example.log.level == defaults.log.level);
    CHECK(example.tls.ocsp_stapling == defaults.tls.ocsp_stapling);
    CHECK(example.tls.ocsp_retry_interval == defaults.tls.ocsp_retry_interval);

    // Uncommenting the optional [app] block (minus the exclusive start/stop) parses too.
    std::string error;
    CHECK_NOTHROW(parse_config("[app]\ncommand = \"bin/server --port ${PORT}\"\nhealth_path = \"/up\"\n"
                               "health_interval = \"1s\"\nhealth_timeout = \"2s\"\nhealthy_threshold = 2\n"
                               "unhealthy_threshold = 3\nstart_timeout = \"60s\"\nstop_timeout = \"10s\"\n"
                               "env_file = \"\"\nbefore_activate = \"\"\nbefore_activate_timeout = \"5m\"\n"
                               "max_restarts = 5\nrestart_window = \"5m\"\nlog_max_bytes = \"10MiB\"\nlog_keep = 3\n",
                               "x.toml"));
}

TEST_CASE("load_config reports an unreadable file") {
    CHECK_THROWS_AS(load_config("/nonexistent/releasectl.toml"), ConfigError);
}
