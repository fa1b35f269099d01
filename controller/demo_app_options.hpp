#pragma once
// Configuration of releasectl-demo-app, the bundled backend used by the demo,
// the integration tests and the benchmark. Sources, weakest first: built-in
// defaults, environment, a `demo-app.env` file, command-line flags.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace releasectl::demo {

struct DemoAppOptions {
    // Exactly one of these is set after parsing.
    std::string listen_host;      // TCP: numeric address
    std::uint16_t listen_port = 0;
    std::string unix_path;        // Unix socket path

    unsigned threads = 1;
    std::string release = "dev";  // X-Release header, body of "/"
    std::string slot;             // X-Slot header
    // Parts per million of app requests answered 500 (counter based: 100000 = every 10th).
    std::uint32_t error_ppm = 0;
    std::chrono::milliseconds extra_latency{0};
    std::chrono::milliseconds shutdown_timeout{10'000};

    bool listens_on_unix() const { return !unix_path.empty(); }
    std::string listen_description() const; // "127.0.0.1:9001" or "unix:/path"
};

struct ParsedOptions {
    std::optional<DemoAppOptions> options; // nullopt: see message / exit_code
    std::string message;                   // usage text or error
    int exit_code = 0;                     // 0 for --help, 2 for errors
};

// Reads flags, the environment (getenv) and the env file (default ./demo-app.env).
ParsedOptions parse_demo_app_options(int argc, char** argv);

// "250ms", "3s", "2m", "1500" (ms). nullopt on garbage.
std::optional<std::chrono::milliseconds> parse_demo_duration(std::string_view text);

} // namespace releasectl::demo
