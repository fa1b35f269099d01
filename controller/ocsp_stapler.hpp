#pragma once
// OCSP stapling on the control thread: for every served certificate whose
// leaf names an http:// responder, fetch and verify a response, keep it fresh,
// and publish the served set with the staples attached. Workers only read the
// staple out of the set they already hold (no lock, no I/O on their side).
#include "controller/http_client.hpp"
#include "controller/ocsp_schedule.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace releasectl {

namespace proxy { class TlsContextSet; }

class OcspStapler {
public:
    using Publish = std::function<void(std::shared_ptr<const proxy::TlsContextSet>)>;
    // POSTs one DER OCSPRequest; tests put a responder of their own here.
    using Fetch = std::function<boost::asio::awaitable<HttpResult>(std::string url, std::string request_der)>;
    struct Options {
        ocsp::Timing timing;
        std::chrono::milliseconds timeout{10'000}; // per fetch
        Fetch fetch;                               // null: plain HTTP POST (http_request)
    };

    OcspStapler(boost::asio::io_context& io, Options options, Publish publish);
    ~OcspStapler();
    OcspStapler(const OcspStapler&) = delete;
    OcspStapler& operator=(const OcspStapler&) = delete;

    // `base` (fresh from the certificate files) is what is served from now on.
    // Returns it with the staples of the certificates it still serves (publish
    // that, so a reload never serves a moment without them); fetching happens
    // in the background and each change is handed to `publish` as
    // base->with_staples(...). Only the newest base is ever published: results
    // for an older one apply only to certificates the newest still serves.
    std::shared_ptr<const proxy::TlsContextSet> watch(std::shared_ptr<const proxy::TlsContextSet> base);
    // Cancels the timer; results still in flight are dropped.
    void stop();

private:
    struct Watched {
        ocsp::Subject subject;
        std::string name; // for logs: the first DNS name, else the file
        std::string cert_path;
    };

    boost::asio::awaitable<void> run();
    void apply(const std::string& identity, const Watched& watched, const HttpResult& result);
    void expire_staples(ocsp::SystemTime now);
    void publish_if_changed();

    boost::asio::io_context& io_;
    Options options_;
    Publish publish_;
    boost::asio::steady_timer timer_;
    std::shared_ptr<bool> stopped_;
    bool running_ = false;
    std::shared_ptr<const proxy::TlsContextSet> base_;
    std::map<std::string, Watched> watched_; // by identity, for the newest base
    ocsp::StapleBook book_;
    std::vector<std::string> published_;     // staples of the set last handed out
    std::set<std::string> warned_;           // skip warnings already logged
};

} // namespace releasectl
