#include "controller/demo_app_options.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

namespace releasectl::demo {
namespace {

constexpr std::string_view usage_text =
    "usage: releasectl-demo-app [--listen HOST:PORT | --unix PATH] [options]\n"
    "\n"
    "  --listen HOST:PORT      TCP listener (default: 127.0.0.1:$PORT when PORT is set)\n"
    "  --unix PATH             Unix socket listener (default: $SOCKET_PATH)\n"
    "  --threads N             worker threads, 0 = one per core (default: $THREADS or 1)\n"
    "  --release NAME          release name in X-Release and GET / (default: $RELEASE_ID or dev)\n"
    "  --slot NAME             value of X-Slot (default: $SLOT or empty)\n"
    "  --error-rate F          fraction of app requests answered 500, counter based:\n"
    "                          0.1 = every 10th (default: ERROR_RATE or 0)\n"
    "  --extra-latency DUR     delay added to app routes, not /up, e.g. 250ms, 3s\n"
    "                          (default: EXTRA_LATENCY_MS or 0)\n"
    "  --env-file PATH         KEY=VALUE file read at start (default: ./demo-app.env if present)\n"
    "  --shutdown-timeout DUR  SIGTERM: longest wait for in-flight requests (default: 10s)\n"
    "\n"
    "The env file and the environment understand ERROR_RATE, EXTRA_LATENCY_MS, RELEASE_ID,\n"
    "SLOT, THREADS; flags win over the env file, which wins over the environment.\n";

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

template <class Int>
std::optional<Int> parse_int(std::string_view s) {
    Int value{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return value;
}

std::optional<std::uint32_t> parse_error_rate(std::string_view s) {
    // std::from_chars for double is fine in gcc 12.
    double value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
    if (!(value >= 0.0 && value <= 1.0)) return std::nullopt;
    return static_cast<std::uint32_t>(std::lround(value * 1'000'000));
}

bool parse_listen(std::string_view text, DemoAppOptions& out) {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    std::string_view host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host.empty() || host == "localhost") host = "127.0.0.1";
    auto port = parse_int<std::uint16_t>(text.substr(colon + 1));
    if (!port) return false;
    out.listen_host = std::string(host);
    out.listen_port = *port;
    out.unix_path.clear();
    return true;
}

std::map<std::string, std::string> read_env_file(const std::string& path, bool required,
                                                 std::string* error) {
    std::map<std::string, std::string> values;
    std::ifstream in(path);
    if (!in) {
        if (required) *error = "cannot read env file " + path;
        return values;
    }
    std::string line;
    while (std::getline(in, line)) {
        std::string_view view = trim(line);
        if (view.empty() || view.front() == '#') continue;
        if (view.starts_with("export ")) view = trim(view.substr(7));
        auto eq = view.find('=');
        if (eq == std::string_view::npos) continue;
        std::string_view value = trim(view.substr(eq + 1));
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
            value.back() == value.front())
            value = value.substr(1, value.size() - 2);
        values[std::string(trim(view.substr(0, eq)))] = std::string(value);
    }
    return values;
}

} // namespace

std::optional<std::chrono::milliseconds> parse_demo_duration(std::string_view text) {
    text = trim(text);
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    auto number = parse_int<std::uint64_t>(text.substr(0, digits));
    if (!number) return std::nullopt;
    std::string_view unit = text.substr(digits);
    std::uint64_t factor = 0;
    if (unit.empty() || unit == "ms") factor = 1;
    else if (unit == "s") factor = 1'000;
    else if (unit == "m") factor = 60'000;
    else if (unit == "h") factor = 3'600'000;
    else return std::nullopt;
    return std::chrono::milliseconds(*number * factor);
}

std::string DemoAppOptions::listen_description() const {
    if (listens_on_unix()) return "unix:" + unix_path;
    if (listen_host.find(':') != std::string::npos)
        return "[" + listen_host + "]:" + std::to_string(listen_port);
    return listen_host + ":" + std::to_string(listen_port);
}

ParsedOptions parse_demo_app_options(int argc, char** argv) {
    ParsedOptions result;
    auto fail = [&](std::string message) {
        result.options.reset();
        result.message = std::move(message) + "\n\n" + std::string(usage_text);
        result.exit_code = 2;
        return result;
    };

    // Flags first into a map so that the env file path is known before the
    // weaker sources are applied.
    std::map<std::string, std::string> flags;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            result.message = std::string(usage_text);
            result.exit_code = 0;
            return result;
        }
        if (!arg.starts_with("--")) return fail("unexpected argument: " + std::string(arg));
        std::string name, value;
        if (auto eq = arg.find('='); eq != std::string_view::npos) {
            name = std::string(arg.substr(2, eq - 2));
            value = std::string(arg.substr(eq + 1));
        } else {
            name = std::string(arg.substr(2));
            if (i + 1 >= argc) return fail("--" + name + " needs a value");
            value = argv[++i];
        }
        static const char* known[] = {"listen", "unix", "threads", "release", "slot",
                                      "error-rate", "extra-latency", "env-file",
                                      "shutdown-timeout"};
        bool is_known = false;
        for (const char* k : known) is_known |= (name == k);
        if (!is_known) return fail("unknown flag --" + name);
        flags[name] = value;
    }

    // Weakest to strongest: environment, env file, flags.
    std::map<std::string, std::string> settings;
    for (const char* key : {"PORT", "SOCKET_PATH", "RELEASE_ID", "SLOT", "THREADS",
                            "ERROR_RATE", "EXTRA_LATENCY_MS"}) {
        if (const char* value = std::getenv(key); value && *value) settings[key] = value;
    }
    std::string file_error;
    const bool file_required = flags.count("env-file") > 0;
    const std::string env_file = file_required ? flags["env-file"] : "demo-app.env";
    for (auto& [key, value] : read_env_file(env_file, file_required, &file_error))
        settings[key] = value;
    if (!file_error.empty()) return fail(file_error);

    DemoAppOptions options;
    if (auto it = settings.find("RELEASE_ID"); it != settings.end()) options.release = it->second;
    if (auto it = settings.find("SLOT"); it != settings.end()) options.slot = it->second;
    if (auto it = settings.find("THREADS"); it != settings.end()) {
        auto n = parse_int<unsigned>(it->second);
        if (!n) return fail("THREADS: not a number: " + it->second);
        options.threads = *n;
    }
    if (auto it = settings.find("ERROR_RATE"); it != settings.end()) {
        auto ppm = parse_error_rate(it->second);
        if (!ppm) return fail("ERROR_RATE: expected a fraction 0..1: " + it->second);
        options.error_ppm = *ppm;
    }
    if (auto it = settings.find("EXTRA_LATENCY_MS"); it != settings.end()) {
        auto ms = parse_int<std::uint64_t>(it->second);
        if (!ms) return fail("EXTRA_LATENCY_MS: not a number: " + it->second);
        options.extra_latency = std::chrono::milliseconds(*ms);
    }
    if (auto it = settings.find("PORT"); it != settings.end()) {
        auto port = parse_int<std::uint16_t>(it->second);
        if (!port) return fail("PORT: not a port: " + it->second);
        options.listen_host = "127.0.0.1";
        options.listen_port = *port;
    }
    if (auto it = settings.find("SOCKET_PATH"); it != settings.end()) {
        options.unix_path = it->second;
        options.listen_host.clear();
    }

    if (auto it = flags.find("listen"); it != flags.end() && !parse_listen(it->second, options))
        return fail("--listen: expected HOST:PORT, got " + it->second);
    if (auto it = flags.find("unix"); it != flags.end()) {
        if (flags.count("listen")) return fail("--listen and --unix are exclusive");
        options.unix_path = it->second;
        options.listen_host.clear();
    }
    if (auto it = flags.find("threads"); it != flags.end()) {
        auto n = parse_int<unsigned>(it->second);
        if (!n) return fail("--threads: not a number: " + it->second);
        options.threads = *n;
    }
    if (auto it = flags.find("release"); it != flags.end()) options.release = it->second;
    if (auto it = flags.find("slot"); it != flags.end()) options.slot = it->second;
    if (auto it = flags.find("error-rate"); it != flags.end()) {
        auto ppm = parse_error_rate(it->second);
        if (!ppm) return fail("--error-rate: expected a fraction 0..1: " + it->second);
        options.error_ppm = *ppm;
    }
    if (auto it = flags.find("extra-latency"); it != flags.end()) {
        auto d = parse_demo_duration(it->second);
        if (!d) return fail("--extra-latency: expected a duration like 250ms or 3s: " + it->second);
        options.extra_latency = *d;
    }
    if (auto it = flags.find("shutdown-timeout"); it != flags.end()) {
        auto d = parse_demo_duration(it->second);
        if (!d) return fail("--shutdown-timeout: expected a duration: " + it->second);
        options.shutdown_timeout = *d;
    }

    if (options.threads == 0) options.threads = std::max(1u, std::thread::hardware_concurrency());
    if (options.unix_path.empty() && options.listen_host.empty())
        return fail("nowhere to listen: pass --listen HOST:PORT or --unix PATH (or set PORT / SOCKET_PATH)");
    // Header values must stay on one line.
    for (const std::string* text : {&options.release, &options.slot}) {
        if (text->find_first_of("\r\n") != std::string::npos)
            return fail("release and slot names must not contain line breaks");
    }
    result.options = std::move(options);
    return result;
}

} // namespace releasectl::demo
