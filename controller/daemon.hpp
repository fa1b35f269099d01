#pragma once
#include <string>

namespace releasectl {

// `releasectl serve`: proxy + controller in one process. Returns the exit code.
int run_daemon(const std::string& config_path);

} // namespace releasectl
