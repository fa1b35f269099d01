#pragma once
// The CLI's client subcommands (see cli_commands.cpp for exit codes).
#include "controller/admin_client.hpp"

#include <string>
#include <vector>

namespace releasectl {

struct DeployOptions {
    std::string path;
    std::string release;
    std::string strategy;
    std::vector<unsigned> steps;
    std::string step_duration;
    bool detach = false;
    bool force = false;
};

int cmd_deploy(const AdminClient& client, const DeployOptions& options);
int cmd_status(const AdminClient& client, bool watch, bool as_json);
int cmd_simple(const AdminClient& client, const std::string& path, const std::string& body);
int cmd_history(const AdminClient& client, bool as_json);
int cmd_releases_remote(const AdminClient& client, bool as_json);

} // namespace releasectl
