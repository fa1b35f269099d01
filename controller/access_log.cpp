#include "access_log.hpp"

#include <spdlog/async.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <spdlog/sinks/base_sink.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace releasectl {

void append_json_escaped(std::string& out, std::string_view text) {
    static const char* hex = "0123456789abcdef";
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else if (c < 0x20 || c == 0x7f) {
            out.append("\\u00");
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        } else if (c < 0x80) {
            out.push_back(static_cast<char>(c));
        } else {
            // Copy a well-formed UTF-8 sequence; replace anything else.
            std::size_t len = (c >= 0xF0 && c <= 0xF4) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC2 && c <= 0xDF) ? 2 : 0;
            bool ok = len > 0 && i + len <= text.size();
            for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
            if (ok) {
                out.append(text.substr(i, len));
                i += len - 1;
            } else {
                out.append("\\ufffd");
            }
        }
    }
}

namespace {

// A file sink that can reopen its path (logrotate renamed the old file). The
// async logger's single thread is the only writer. reopen() opens the new file
// first and swaps it in under the sink's own mutex, so no queued line is lost or
// split, and a path that cannot be opened (directory gone, permissions, a
// directory in its place) leaves the old file in use instead of a closed one.
class ReopenableFileSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit ReopenableFileSink(std::string path) : path_(std::move(path)) {
        file_ = open_append(path_);
        if (!file_) throw std::runtime_error("cannot open the access log " + path_ + ": " + std::strerror(errno));
    }
    ~ReopenableFileSink() override {
        if (file_) std::fclose(file_);
    }
    // "" when reopened, else why not (the old file stays in use).
    std::string reopen() {
        std::FILE* fresh = open_append(path_);
        if (!fresh) return "cannot reopen " + path_ + ": " + std::strerror(errno) + " (still writing to the old file)";
        std::lock_guard lock(mutex_);
        std::fclose(file_); // flushes what the old file still buffers
        file_ = fresh;
        return {};
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        std::fwrite(formatted.data(), 1, formatted.size(), file_);
    }
    void flush_() override { std::fflush(file_); }

private:
    // Like spdlog's own file sink: the directory is created when missing.
    static std::FILE* open_append(const std::string& path) {
        std::error_code ignored;
        auto parent = std::filesystem::path(path).parent_path();
        if (!parent.empty()) std::filesystem::create_directories(parent, ignored);
        return std::fopen(path.c_str(), "ab");
    }

    std::string path_;
    std::FILE* file_ = nullptr;
};

} // namespace

struct AccessLog::Impl {
    std::shared_ptr<spdlog::logger> logger;
    std::shared_ptr<ReopenableFileSink> file_sink;
};

AccessLog::AccessLog(std::string path) : impl_(std::make_shared<Impl>()) {
    if (!spdlog::thread_pool()) spdlog::init_thread_pool(65536, 1);
    spdlog::sink_ptr sink;
    if (path.empty()) {
        sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    } else {
        impl_->file_sink = std::make_shared<ReopenableFileSink>(std::move(path));
        sink = impl_->file_sink;
    }
    impl_->logger = std::make_shared<spdlog::async_logger>("access", sink, spdlog::thread_pool(),
                                                           spdlog::async_overflow_policy::block);
    impl_->logger->set_pattern("%v");
    impl_->logger->set_level(spdlog::level::info);
    impl_->logger->flush_on(spdlog::level::info);
}

AccessLog::~AccessLog() {
    if (impl_->logger) impl_->logger->flush();
}

std::string AccessLog::reopen() {
    if (!impl_->file_sink) return {};
    return impl_->file_sink->reopen();
}

proxy::AccessSink AccessLog::sink() {
    auto impl = impl_;
    return [impl](const proxy::AccessRecord& r) {
        thread_local std::string line;
        line.clear();
        char time_text[40];
        std::time_t seconds = static_cast<std::time_t>(r.unix_micros / 1'000'000);
        std::tm tm{};
        gmtime_r(&seconds, &tm);
        std::size_t n = std::strftime(time_text, sizeof time_text, "%Y-%m-%dT%H:%M:%S", &tm);
        std::snprintf(time_text + n, sizeof time_text - n, ".%06lldZ", static_cast<long long>(r.unix_micros % 1'000'000));
        line.append("{\"time\":\"").append(time_text).append("\",\"client\":\"");
        append_json_escaped(line, r.client);
        line.append("\",\"method\":\"");
        append_json_escaped(line, r.method);
        line.append("\",\"host\":\"");
        append_json_escaped(line, r.host);
        line.append("\",\"path\":\"");
        append_json_escaped(line, r.path);
        line.append("\",\"status\":").append(std::to_string(r.status));
        line.append(",\"bytes_in\":").append(std::to_string(r.bytes_in));
        line.append(",\"bytes_out\":").append(std::to_string(r.bytes_out));
        char seconds_text[64];
        std::snprintf(seconds_text, sizeof seconds_text, ",\"duration\":%.6f,\"upstream_time\":%.6f",
                      static_cast<double>(r.duration_micros) / 1e6, static_cast<double>(r.upstream_micros) / 1e6);
        line.append(seconds_text);
        line.append(",\"slot\":\"");
        append_json_escaped(line, r.slot);
        line.append("\",\"release\":\"");
        append_json_escaped(line, r.release);
        line.append("\",\"request_id\":\"");
        append_json_escaped(line, r.request_id);
        line.append("\",\"user_agent\":\"");
        append_json_escaped(line, r.user_agent);
        line.append("\"}");
        impl->logger->info(line);
    };
}

} // namespace releasectl
