// releasectl: one binary. `serve` runs the daemon; every other subcommand is a
// client of its admin API or a local tool. Exit codes: 0 done, 1 failed /
// refused / rolled back, 2 usage or config error, 3 daemon unreachable.
#include "admin_client.hpp"
#include "cli_commands.hpp"
#include "cli_releases.hpp"
#include "config.hpp"
#include "daemon.hpp"
#include "demo.hpp"
#include "tls_loader.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <sstream>

using namespace releasectl;

namespace {

int cmd_check(const std::string& path) {
    try {
        Config config = load_config(path);
        // The certificates are read exactly as `serve` and SIGHUP read them.
        load_upstream_tls(config);
        std::vector<std::string> warnings;
        auto tls = load_tls_contexts(config, warnings);
        for (const auto& warning : warnings) std::fprintf(stderr, "%s: warning: %s\n", path.c_str(), warning.c_str());
        std::printf("%s: ok (%zu slots, root %s, admin socket %s)\n", path.c_str(), config.slots.size(),
                    config.root.c_str(), config.admin_socket_path().c_str());
        if (tls) std::printf("%s: TLS: %s\n", path.c_str(), describe_tls_contexts(*tls).c_str());
        return 0;
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
    }
}

// Finds the daemon: --socket, then RELEASECTL_SOCKET, then --config's admin socket.
std::optional<AdminClient> client_for(const std::string& socket, const std::string& config_path, const std::string& token,
                                      int* exit_code) {
    if (!socket.empty()) return AdminClient(socket, token);
    if (const char* env = std::getenv("RELEASECTL_SOCKET"); env && *env) return AdminClient(env, token);
    std::string path = config_path;
    if (path.empty()) {
        if (const char* env = std::getenv("RELEASECTL_CONFIG"); env && *env) path = env;
        else path = "/etc/releasectl/releasectl.toml";
    }
    try {
        Config config = load_config(path);
        std::string admin_token = token.empty() ? config.admin.token : token;
        return AdminClient(config.admin_socket_path(), "");
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "releasectl: cannot find the daemon: %s\n  pass --config FILE, --socket PATH or set RELEASECTL_SOCKET\n", e.what());
        *exit_code = 3;
        return std::nullopt;
    }
}

std::optional<std::vector<unsigned>> parse_steps(const std::string& text) {
    std::vector<unsigned> steps;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        try {
            std::size_t used = 0;
            int value = std::stoi(item, &used);
            if (used != item.size() || value < 0) return std::nullopt;
            steps.push_back(static_cast<unsigned>(value));
        } catch (...) {
            return std::nullopt;
        }
    }
    return steps;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"releasectl: blue-green and canary releases behind an embedded reverse proxy.\n"
                 "Clients find the daemon by --config FILE, --socket PATH or RELEASECTL_SOCKET.\n"
                 "Exit codes: 0 done, 1 failed / refused / rolled back, 2 usage or config error, 3 daemon unreachable."};
    app.require_subcommand(1);
    std::string config_path, socket_path, token;
    bool as_json = false;

    auto add_client_options = [&](CLI::App* cmd) {
        cmd->add_option("-c,--config", config_path, "config file (to find the admin socket)");
        cmd->add_option("-s,--socket", socket_path, "admin socket path, or tcp:HOST:PORT");
        cmd->add_option("--token", token, "bearer token for a TCP admin address");
    };

    auto* serve = app.add_subcommand("serve", "run the daemon (proxy + controller)");
    serve->add_option("-c,--config", config_path, "config file")->required();

    auto* check = app.add_subcommand("check", "validate a config file (exit 0 ok, 2 invalid)");
    check->add_option("-c,--config", config_path, "config file")->required();

    DeployOptions deploy_options;
    std::string steps_text;
    auto* deploy = app.add_subcommand("deploy", "roll a release out: PATH (directory or .tar.gz) or --release ID");
    add_client_options(deploy);
    deploy->add_option("path", deploy_options.path, "release directory or .tar.gz to create the release from");
    deploy->add_option("--release", deploy_options.release, "release id (existing, or the id for PATH)");
    deploy->add_option("--strategy", deploy_options.strategy, "canary or blue-green")->check(CLI::IsMember({"canary", "blue-green"}));
    deploy->add_option("--steps", steps_text, "canary steps in percent, e.g. 10,25,50,75,100");
    deploy->add_option("--step-duration", deploy_options.step_duration, "time per step, e.g. 5m, 30s");
    deploy->add_flag("--detach", deploy_options.detach, "return once the rollout started");
    deploy->add_flag("--force", deploy_options.force, "deploy a release that is marked bad");

    bool watch = false;
    auto* status = app.add_subcommand("status", "slots, weights, rollout and live numbers");
    add_client_options(status);
    status->add_flag("-w,--watch", watch, "refresh every second");
    status->add_flag("--json", as_json, "machine-readable");

    bool full = false;
    auto* promote = app.add_subcommand("promote", "advance the rollout one step (or pass a manual gate)");
    add_client_options(promote);
    promote->add_flag("--full", full, "straight to 100%");

    std::string rollback_to;
    auto* rollback = app.add_subcommand("rollback", "all traffic back to the live release now, symlinks back");
    add_client_options(rollback);
    rollback->add_option("--to", rollback_to, "bring an older release back through the idle slot");

    auto* abort_cmd = app.add_subcommand("abort", "stop the rollout: traffic back to live (release not marked bad)");
    add_client_options(abort_cmd);
    auto* pause = app.add_subcommand("pause", "freeze the rollout at its step (failing checks still roll back)");
    add_client_options(pause);
    auto* resume = app.add_subcommand("resume", "continue a paused rollout");
    add_client_options(resume);

    auto* history = app.add_subcommand("history", "past rollouts, their steps and verdicts");
    add_client_options(history);
    history->add_flag("--json", as_json, "machine-readable");

    auto* releases_cmd = app.add_subcommand("releases", "the release store");
    add_client_options(releases_cmd);
    releases_cmd->add_flag("--json", as_json, "machine-readable");

    std::string create_path, create_id;
    auto* release_cmd = app.add_subcommand("release", "release store tools");
    auto* create = release_cmd->add_subcommand("create", "create a release from a directory or .tar.gz (no rollout)");
    create->add_option("-c,--config", config_path, "config file")->required();
    create->add_option("path", create_path, "directory or .tar.gz")->required();
    create->add_option("--id", create_id, "release id (default: UTC YYYYmmddHHMMSS)");
    release_cmd->require_subcommand(1);

    DemoOptions demo_options;
    auto* demo = app.add_subcommand("demo", "the built-in demo: two slots, a canary that succeeds, one that rolls back");
    demo->add_flag("--once", demo_options.once, "exit when the demo is done (default: leave the daemon running)");
    demo->add_option("--dir", demo_options.dir, "working directory (default: a new temp dir)");
    demo->add_option("--port", demo_options.port, "proxy port on 127.0.0.1 (default 8080)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }
    if (*serve) return run_daemon(config_path);
    if (*check) return cmd_check(config_path);
    if (*demo) return run_demo(demo_options, argv[0]);
    if (*release_cmd) {
        try {
            Config config = load_config(config_path);
            return cmd_release_create(config, create_path, create_id.empty() ? std::nullopt : std::optional(create_id));
        } catch (const ConfigError& e) {
            std::fprintf(stderr, "%s\n", e.what());
            return 2;
        }
    }

    int exit_code = 0;
    auto client = client_for(socket_path, config_path, token, &exit_code);
    if (!client) return exit_code;
    if (*deploy) {
        if (deploy_options.path.empty() && deploy_options.release.empty()) {
            std::fprintf(stderr, "releasectl deploy: give a PATH or --release ID\n");
            return 2;
        }
        if (!steps_text.empty()) {
            auto steps = parse_steps(steps_text);
            if (!steps) {
                std::fprintf(stderr, "releasectl deploy: --steps takes comma-separated percentages, e.g. 10,25,50,100\n");
                return 2;
            }
            deploy_options.steps = *steps;
        }
        if (!deploy_options.path.empty()) {
            std::error_code ec;
            auto absolute = std::filesystem::absolute(deploy_options.path, ec);
            if (!ec) deploy_options.path = absolute.string();
        }
        return cmd_deploy(*client, deploy_options);
    }
    if (*status) return cmd_status(*client, watch, as_json);
    if (*promote) return cmd_simple(*client, "/v1/promote", full ? "{\"full\":true}" : "{}");
    if (*rollback) {
        std::string body = rollback_to.empty() ? "{}" : "{\"to\":\"" + rollback_to + "\"}";
        return cmd_simple(*client, "/v1/rollback", body);
    }
    if (*abort_cmd) return cmd_simple(*client, "/v1/abort", "{}");
    if (*pause) return cmd_simple(*client, "/v1/pause", "{}");
    if (*resume) return cmd_simple(*client, "/v1/resume", "{}");
    if (*history) return cmd_history(*client, as_json);
    if (*releases_cmd) return cmd_releases_remote(*client, as_json);
    return 2;
}
