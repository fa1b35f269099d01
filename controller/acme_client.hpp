#pragma once
// Keeps one certificate for [tls.acme] domains current (RFC 8555, HTTP-01):
// on the control thread, it orders a certificate when the stored one is
// missing, the self-signed placeholder, for other names, or within
// renew_before of expiry; the proxy answers the challenges; the new files are
// written atomically and the daemon reloads TLS from them.
#include "controller/config.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace releasectl {

namespace proxy { struct AcmeChallenges; }
struct HttpsResponse;

class AcmeClient {
public:
    struct Hooks {
        // HTTP-01 answers to serve now (empty when no order is pending).
        std::function<void(std::shared_ptr<const proxy::AcmeChallenges>)> publish_challenges;
        // New certificate files are in place.
        std::function<void()> certificate_changed;
    };

    AcmeClient(boost::asio::io_context& io, AcmeConfig config, Hooks hooks);
    ~AcmeClient();
    AcmeClient(const AcmeClient&) = delete;
    AcmeClient& operator=(const AcmeClient&) = delete;

    void start();
    void stop();

    // Writes a self-signed placeholder when no certificate is stored yet, so
    // the HTTPS listeners can start before the first order. Startup only:
    // throws ConfigError when the files cannot be written.
    static void ensure_placeholder(const AcmeConfig& config);

private:
    struct Directory {
        std::string new_nonce, new_account, new_order;
    };

    boost::asio::awaitable<void> maintain();
    // Runs one order to its end; an error sentence, or nullopt on success.
    boost::asio::awaitable<std::optional<std::string>> obtain();
    // A signed POST (payload "" = POST-as-GET), retried once on badNonce.
    boost::asio::awaitable<HttpsResponse> post(const std::string& url, const std::string& payload);
    boost::asio::awaitable<HttpsResponse> get(const std::string& url, const std::string& method = "GET");
    boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds duration);
    bool needs_certificate() const;

    boost::asio::io_context& io_;
    AcmeConfig config_;
    Hooks hooks_;
    boost::asio::steady_timer timer_;
    std::shared_ptr<bool> stopped_;
    struct State;
    std::unique_ptr<State> state_; // account key, directory, nonce, account URL
};

} // namespace releasectl
