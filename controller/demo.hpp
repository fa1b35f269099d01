#pragma once
#include <string>

namespace releasectl {

struct DemoOptions {
    bool once = false;
    std::string dir;     // default: a new temp dir
    unsigned port = 8080;
};

// `releasectl demo`: starts the daemon on loopback with the bundled demo app,
// puts load on it, deploys a good release (10 -> 100 %) and a bad one (10 %
// 5xx) that is rolled back automatically. Returns 0 when both went as expected.
int run_demo(const DemoOptions& options, const char* argv0);

} // namespace releasectl
