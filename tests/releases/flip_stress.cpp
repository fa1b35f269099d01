// Must-show 2: a separate process reads `current` (readlink + stat of the
// target + read of a file through it) in a tight loop while this process flips
// `current` between two releases 10,000 times. The reader must never see a
// missing or dangling link. Exit 0 on success; every failure is printed.
#include "releases/create_release.hpp"
#include "releases/symlinks.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace releasectl::releases;
namespace fs = std::filesystem;

namespace {

constexpr int kFlips = 10'000;
constexpr auto kReaderDeadline = std::chrono::minutes(5); // bounded even if the parent dies

bool stop_requested(int stop_fd) {
    struct pollfd p {stop_fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0; // readable = closed by the parent
}

// One read of `current` the way a web server or a shell would see it.
std::string read_once(const fs::path& current) {
    char target[256];
    ssize_t n = ::readlink(current.c_str(), target, sizeof target);
    if (n <= 0)
        return fmt::format("readlink failed: {}", std::strerror(errno));
    std::string link(target, static_cast<std::size_t>(n));
    if (link != "releases/a" && link != "releases/b")
        return fmt::format("unexpected target '{}'", link);
    struct stat st {};
    if (::stat(current.c_str(), &st) != 0)
        return fmt::format("stat through current failed (dangling?): {}", std::strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return "current does not resolve to a directory";
    int fd = ::open((current / "version").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fmt::format("open current/version failed: {}", std::strerror(errno));
    char c = 0;
    ssize_t got = ::read(fd, &c, 1);
    ::close(fd);
    if (got != 1 || (c != 'a' && c != 'b'))
        return "current/version unreadable";
    return {};
}

int run_reader(const fs::path& current, int stop_fd, int ready_fd) {
    (void)!::write(ready_fd, "r", 1);
    ::close(ready_fd);
    const auto deadline = std::chrono::steady_clock::now() + kReaderDeadline;
    std::uint64_t reads = 0, failures = 0;
    for (;;) {
        if ((reads & 63) == 0 && (stop_requested(stop_fd) || std::chrono::steady_clock::now() > deadline))
            break;
        std::string problem = read_once(current);
        ++reads;
        if (!problem.empty()) {
            if (++failures <= 10)
                fmt::print(stderr, "reader: read {}: {}\n", reads, problem);
        }
    }
    fmt::print("reader: {} reads, {} failures\n", reads, failures);
    return failures == 0 && reads > 0 ? 0 : 1;
}

} // namespace

int main() {
    std::string pattern = (fs::temp_directory_path() / "releasectl-flip-XXXXXX").string();
    if (!::mkdtemp(pattern.data()))
        return 2;
    const fs::path tmp = pattern;
    const fs::path root = tmp / "store";
    int rc = 1;
    {
        for (std::string id : {"a", "b"}) {
            fs::create_directories(tmp / ("src-" + id));
            int fd = ::open((tmp / ("src-" + id) / "version").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            (void)!::write(fd, id.data(), 1);
            ::close(fd);
            CreateOptions options;
            options.id = id;
            auto created = create_release(root, tmp / ("src-" + id), options);
            if (!created) {
                fmt::print(stderr, "setup: {}\n", created.error);
                return 2;
            }
        }
        if (auto status = set_current(root, "a"); !status) {
            fmt::print(stderr, "setup: {}\n", status.error);
            return 2;
        }

        int stop_pipe[2], ready_pipe[2];
        if (::pipe2(stop_pipe, O_CLOEXEC) != 0 || ::pipe2(ready_pipe, O_CLOEXEC) != 0)
            return 2;
        pid_t reader = ::fork();
        if (reader < 0)
            return 2;
        if (reader == 0) {
            ::close(stop_pipe[1]);
            ::close(ready_pipe[0]);
            int reader_rc = run_reader(root / "current", stop_pipe[0], ready_pipe[1]);
            std::fflush(stdout);
            std::fflush(stderr);
            ::_exit(reader_rc);
        }
        ::close(stop_pipe[0]);
        ::close(ready_pipe[1]);
        char ready = 0;
        (void)!::read(ready_pipe[0], &ready, 1); // the reader is looping before the first flip
        ::close(ready_pipe[0]);

        const auto started = std::chrono::steady_clock::now();
        int flip_failures = 0;
        for (int i = 0; i < kFlips; ++i) {
            if (auto status = set_current(root, i % 2 == 0 ? "b" : "a"); !status && ++flip_failures <= 10)
                fmt::print(stderr, "flip {}: {}\n", i, status.error);
        }
        const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        ::close(stop_pipe[1]); // tells the reader to finish

        int status = 0;
        while (::waitpid(reader, &status, 0) < 0 && errno == EINTR) {
        }
        const bool reader_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        // No temporary link names may be left behind either.
        int stray = 0;
        for (auto& entry : fs::directory_iterator(root))
            if (entry.path().filename().string().find(".tmp-") != std::string::npos)
                ++stray;
        fmt::print("writer: {} flips in {} ms, {} flip failures, {} stray temp links; reader {}\n", kFlips,
                   elapsed.count(), flip_failures, stray, reader_ok ? "clean" : "SAW FAILURES");
        rc = reader_ok && flip_failures == 0 && stray == 0 ? 0 : 1;
    }
    std::error_code ec;
    fs::remove_all(tmp, ec);
    return rc;
}
