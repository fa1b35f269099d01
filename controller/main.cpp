// releasectl: one binary. `serve` runs the daemon; every other subcommand is a
// client or a local tool. Exit codes: 0 done, 1 failed / rolled back, 2 usage
// or config error, 3 daemon unreachable.
#include "config.hpp"
#include "daemon.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

using namespace releasectl;

namespace {

int cmd_check(const std::string& path) {
    try {
        Config config = load_config(path);
        std::printf("%s: ok (%zu slots, root %s)\n", path.c_str(), config.slots.size(), config.root.c_str());
        return 0;
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
    }
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"releasectl: blue-green and canary releases behind an embedded reverse proxy"};
    app.require_subcommand(1);
    std::string config_path;

    auto* serve = app.add_subcommand("serve", "run the daemon (proxy + controller)");
    serve->add_option("-c,--config", config_path, "config file")->required();

    auto* check = app.add_subcommand("check", "validate a config file (exit 0 ok, 2 invalid)");
    check->add_option("-c,--config", config_path, "config file")->required();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }
    if (*serve) return run_daemon(config_path);
    if (*check) return cmd_check(config_path);
    return 2;
}
