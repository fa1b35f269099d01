#include "controller/demo.hpp"

#include "controller/admin_client.hpp"
#include "controller/cli_commands.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace releasectl {
namespace fs = std::filesystem;

namespace {

unsigned free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
}

bool port_free(unsigned port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

void write_file(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
}

// Keep-alive GET load on the proxy, counting answers per release and status class.
class Load {
public:
    Load(unsigned port, unsigned connections, unsigned per_second) : port_(port) {
        for (unsigned i = 0; i < connections; ++i)
            threads_.emplace_back([this, gap = std::chrono::microseconds(1'000'000 * connections / per_second)] { run(gap); });
    }
    ~Load() { stop(); }
    void stop() {
        running_ = false;
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }
    std::map<std::string, std::map<int, unsigned long>> counts() {
        std::lock_guard lock(mutex_);
        return counts_;
    }

private:
    int connect_proxy() {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(static_cast<uint16_t>(port_));
        timeval timeout{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            ::close(fd);
            return -1;
        }
        return fd;
    }
    void record(const std::string& release, int status_class) {
        std::lock_guard lock(mutex_);
        ++counts_[release][status_class];
    }
    void run(std::chrono::microseconds gap) {
        int fd = -1;
        const std::string request = "GET / HTTP/1.1\r\nHost: demo\r\nUser-Agent: releasectl-demo-load\r\n\r\n";
        auto next = std::chrono::steady_clock::now();
        while (running_) {
            next += gap;
            std::this_thread::sleep_until(next);
            if (fd < 0) fd = connect_proxy();
            if (fd < 0) {
                record("-", 0);
                continue;
            }
            std::string response;
            bool ok = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size());
            char buffer[4096];
            std::size_t body_needed = std::string::npos;
            while (ok) {
                ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
                if (n <= 0) {
                    ok = false;
                    break;
                }
                response.append(buffer, static_cast<std::size_t>(n));
                auto head_end = response.find("\r\n\r\n");
                if (head_end == std::string::npos) continue;
                if (body_needed == std::string::npos) {
                    auto cl = response.find("Content-Length: ");
                    body_needed = cl == std::string::npos ? 0 : std::stoul(response.substr(cl + 16));
                }
                if (response.size() >= head_end + 4 + body_needed) break;
            }
            if (!ok) {
                record("-", 0);
                ::close(fd);
                fd = -1;
                continue;
            }
            int status = std::atoi(response.c_str() + 9);
            std::string release = "-";
            if (auto at = response.find("X-Release: "); at != std::string::npos)
                release = response.substr(at + 11, response.find("\r\n", at) - at - 11);
            record(release, status / 100);
        }
        if (fd >= 0) ::close(fd);
    }

    unsigned port_;
    std::atomic<bool> running_{true};
    std::vector<std::thread> threads_;
    std::mutex mutex_;
    std::map<std::string, std::map<int, unsigned long>> counts_;
};

int wait_for_daemon(const AdminClient& client, pid_t daemon, int seconds) {
    for (int i = 0; i < seconds * 10; ++i) {
        if (client.get("/v1/status").reached) return 0;
        int status = 0;
        if (::waitpid(daemon, &status, WNOHANG) == daemon) return 1;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return 1;
}

volatile sig_atomic_t interrupted = 0;

} // namespace

int run_demo(const DemoOptions& options, const char* argv0) {
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) self = fs::absolute(argv0);
    fs::path app = self.parent_path() / "releasectl-demo-app";
    if (!fs::exists(app)) {
        std::fprintf(stderr, "demo: %s not found (it is built next to releasectl)\n", app.c_str());
        return 2;
    }
    fs::path dir = options.dir.empty() ? fs::temp_directory_path() / ("releasectl-demo-" + std::to_string(::getpid()))
                                       : fs::absolute(options.dir);
    fs::create_directories(dir);
    unsigned port = options.port;
    if (!port_free(port)) {
        unsigned other = free_port();
        std::printf("demo: port %u is busy, using %u\n", port, other);
        port = other;
    }
    unsigned blue_port = free_port(), green_port = free_port(), metrics_port = free_port();
    fs::path config = dir / "releasectl.toml";
    write_file(config, "# written by `releasectl demo`\n"
                       "root = \"" + (dir / "root").string() + "\"\n"
                       "[proxy]\nlisten = [\"127.0.0.1:" + std::to_string(port) + "\"]\nworkers = 1\n"
                       "[slots.blue]\nupstream = \"127.0.0.1:" + std::to_string(blue_port) + "\"\n"
                       "[slots.green]\nupstream = \"127.0.0.1:" + std::to_string(green_port) + "\"\n"
                       "[weights]\nblue = 100\ngreen = 0\n"
                       "[routing]\nsticky = false\n"
                       "[app]\ncommand = \"" + app.string() + " --listen 127.0.0.1:${PORT} --threads 1\"\n"
                       "health_path = \"/up\"\nhealth_interval = \"200ms\"\nhealthy_threshold = 2\nstop_timeout = \"3s\"\n"
                       "[rollout]\nstrategy = \"canary\"\nsteps = [10, 25, 50, 75, 100]\nstep_duration = \"6s\"\n"
                       "check_interval = \"2s\"\nmin_requests = 20\nmax_error_rate = 0.05\nmax_p95 = \"500ms\"\n"
                       "failure_threshold = 2\nrollback_window = \"1m\"\nmax_step_duration = \"1m\"\n"
                       "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) + "\"\n"
                       "[admin]\nsocket = \"" + (dir / "admin.sock").string() + "\"\n"
                       "[log]\naccess_log = true\naccess_log_path = \"" + (dir / "access.log").string() + "\"\n");
    // Three releases of the demo app: two good ones and one that answers 10 % 5xx.
    write_file(dir / "src/v1/demo-app.env", "ERROR_RATE=0\nEXTRA_LATENCY_MS=0\n");
    write_file(dir / "src/v2/demo-app.env", "ERROR_RATE=0\nEXTRA_LATENCY_MS=5\n");
    write_file(dir / "src/v3-bad/demo-app.env", "ERROR_RATE=0.1\nEXTRA_LATENCY_MS=0\n");

    std::printf("== releasectl demo in %s\n   proxy http://127.0.0.1:%u  metrics http://127.0.0.1:%u/metrics\n",
                dir.c_str(), port, metrics_port);
    std::fflush(stdout);
    pid_t daemon = ::fork();
    if (daemon == 0) {
        std::string log = (dir / "daemon.log").string();
        std::FILE* out = std::freopen(log.c_str(), "a", stdout);
        (void)out;
        ::dup2(STDOUT_FILENO, STDERR_FILENO);
        ::execl(self.c_str(), self.c_str(), "serve", "--config", config.c_str(), static_cast<char*>(nullptr));
        std::_Exit(127);
    }
    AdminClient client((dir / "admin.sock").string());
    auto stop_daemon = [&] {
        ::kill(daemon, SIGTERM);
        int status = 0;
        for (int i = 0; i < 400 && ::waitpid(daemon, &status, WNOHANG) == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (::waitpid(daemon, &status, WNOHANG) == 0) {
            ::kill(daemon, SIGKILL);
            ::waitpid(daemon, &status, 0);
        }
    };
    if (wait_for_daemon(client, daemon, 20) != 0) {
        std::fprintf(stderr, "demo: the daemon did not start; see %s\n", (dir / "daemon.log").c_str());
        stop_daemon();
        return 1;
    }

    auto deploy = [&](const char* source, const char* id, const char* title) {
        std::printf("\n== %s: releasectl deploy %s --release %s\n", title, source, id);
        std::fflush(stdout);
        DeployOptions d;
        d.path = (dir / source).string();
        d.release = id;
        return cmd_deploy(client, d);
    };
    int first = deploy("src/v1", "v1", "first release (no live slot yet: straight to 100%)");
    Load load(port, 4, 300);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    int good = deploy("src/v2", "v2", "a good release: canary 10 -> 25 -> 50 -> 75 -> 100");
    int bad = deploy("src/v3-bad", "v3-bad", "a bad release (every 10th request is a 500): rolled back automatically");
    std::this_thread::sleep_for(std::chrono::seconds(1));
    load.stop();

    std::printf("\n== traffic the demo load saw (status classes per release)\n");
    unsigned long failed_on_live = 0;
    for (const auto& [release, classes] : load.counts()) {
        std::string line;
        for (const auto& [cls, n] : classes) line += "  " + (cls ? std::to_string(cls) + "xx" : std::string("conn-error")) + "=" + std::to_string(n);
        std::printf("  %-8s%s\n", release.c_str(), line.c_str());
        if (release != "v3-bad")
            for (const auto& [cls, n] : classes)
                if (cls == 5 || cls == 0) failed_on_live += n;
    }
    std::printf("\n== history\n");
    cmd_history(client, false);
    bool as_expected = first == 0 && good == 0 && bad == 1;
    std::printf("\n== result: %s (promoted v2, rolled back v3-bad; %lu failed requests outside the bad canary)\n",
                as_expected ? "as expected" : "NOT as expected", failed_on_live);
    if (options.once) {
        stop_daemon();
        return as_expected ? 0 : 1;
    }
    std::printf("\nThe daemon keeps running. Try:\n"
                "  curl -i http://127.0.0.1:%u/\n"
                "  %s status --socket %s --watch\n"
                "  %s deploy %s --release v4 --socket %s\n"
                "  %s rollback --socket %s\n"
                "  curl -s http://127.0.0.1:%u/metrics | grep releasectl_\n"
                "Press Ctrl-C to stop it.\n",
                port, self.c_str(), (dir / "admin.sock").c_str(), self.c_str(), (dir / "src/v2").c_str(),
                (dir / "admin.sock").c_str(), self.c_str(), (dir / "admin.sock").c_str(), metrics_port);
    std::fflush(stdout);
    struct sigaction action {};
    action.sa_handler = [](int) { interrupted = 1; };
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
    while (!interrupted) {
        int status = 0;
        if (::waitpid(daemon, &status, WNOHANG) == daemon) return 1;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    stop_daemon();
    return as_expected ? 0 : 1;
}

} // namespace releasectl
