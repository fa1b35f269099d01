#pragma once
// JSON-lines access log: one object per request, written by spdlog's async
// logger so a worker never waits on the disk. Reopened on SIGUSR1 (logrotate).
#include "proxy/proxy_server.hpp"

#include <memory>
#include <string>

namespace releasectl {

class AccessLog {
public:
    // path empty = stdout. Throws std::runtime_error when the file cannot be opened.
    explicit AccessLog(std::string path);
    ~AccessLog();
    proxy::AccessSink sink();
    // SIGUSR1: opens the path anew. Returns "" or why it could not (then the
    // old file stays in use: a failed reopen never stops the logging).
    std::string reopen();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

// Appends `text` to `out` as a JSON string body (without quotes), escaping
// quotes, backslashes, control bytes and invalid UTF-8 (as \uFFFD).
void append_json_escaped(std::string& out, std::string_view text);

} // namespace releasectl
