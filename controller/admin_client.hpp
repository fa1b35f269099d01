#pragma once
// A blocking client of the admin API (the CLI's side): one request per
// connection over the Unix socket, or TCP with a bearer token.
#include <boost/json/value.hpp>

#include <optional>
#include <string>

namespace releasectl {

struct AdminResponse {
    bool reached = false;     // false: daemon unreachable (exit code 3)
    unsigned status = 0;
    boost::json::value body;  // parsed JSON (null when not JSON)
    std::string error;        // why unreachable / unparsable
};

class AdminClient {
public:
    // `address`: a Unix socket path, or "tcp:host:port" (with token).
    AdminClient(std::string address, std::string token = {}) : address_(std::move(address)), token_(std::move(token)) {}
    AdminResponse get(const std::string& path) const { return call("GET", path, ""); }
    AdminResponse post(const std::string& path, const std::string& json_body) const { return call("POST", path, json_body); }
    const std::string& address() const { return address_; }

private:
    AdminResponse call(const std::string& method, const std::string& path, const std::string& body) const;
    std::string address_;
    std::string token_;
};

} // namespace releasectl
