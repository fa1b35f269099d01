#include "controller/ocsp_stapler.hpp"

#include "proxy/tls_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace releasectl {
namespace asio = boost::asio;
using ocsp::StapleBook;

namespace {
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);
// Real responses are a few KiB; a client would choke on a huge staple.
constexpr std::size_t kMaxResponseBytes = 64 * 1024;
// Wake up at least this often: a wall-clock jump must not stall refreshes.
constexpr std::chrono::milliseconds kMaxSleep{3'600'000};

// "12h", "45m", "8s": schedules from nextUpdate are not whole units.
std::string describe(std::chrono::milliseconds delay) {
    using namespace std::chrono;
    if (delay >= 2h) return std::to_string(duration_cast<minutes>(delay + 30min).count() / 60) + "h";
    if (delay >= 2min) return std::to_string(duration_cast<seconds>(delay + 30s).count() / 60) + "m";
    return std::to_string(duration_cast<seconds>(delay + 500ms).count()) + "s";
}

} // namespace

OcspStapler::OcspStapler(asio::io_context& io, Options options, Publish publish)
    : io_(io), options_(std::move(options)), publish_(std::move(publish)), timer_(io),
      stopped_(std::make_shared<bool>(false)), book_(options_.timing) {
    if (!options_.fetch) {
        options_.fetch = [&io, timeout = options_.timeout](std::string url, std::string request_der) {
            return http_request(io, "POST", std::move(url), std::move(request_der), "application/ocsp-request",
                                timeout);
        };
    }
}

OcspStapler::~OcspStapler() { stop(); }

void OcspStapler::stop() {
    *stopped_ = true;
    timer_.cancel();
}

std::shared_ptr<const proxy::TlsContextSet> OcspStapler::watch(std::shared_ptr<const proxy::TlsContextSet> base) {
    base_ = base;
    watched_.clear();
    std::vector<std::string> identities;
    const auto& certificates = base->certificates();
    for (std::size_t i = 0; i < certificates.size(); ++i) {
        const auto& certificate = certificates[i];
        const std::string name = certificate.dns_names.empty() ? certificate.cert_path : certificate.dns_names.front();
        auto found = ocsp::subject_for(base->context_at(i));
        if (!found.subject) {
            identities.emplace_back();
            const std::string line = fmt::format("OCSP: not stapling {} ({}): it {}", name, certificate.cert_path,
                                                 found.skipped);
            if (!found.warn) spdlog::debug("{}", line);
            else if (warned_.insert(line).second) spdlog::warn("{}", line);
            continue;
        }
        identities.push_back(found.subject->identity);
        watched_.insert_or_assign(identities.back(), Watched{std::move(*found.subject), name, certificate.cert_path});
    }
    const auto now = std::chrono::system_clock::now();
    book_.rebase(identities, now);
    expire_staples(now); // a kept staple must still be current
    published_ = book_.staples();
    if (!*stopped_) {
        timer_.cancel(); // new certificates are due now
        if (!running_ && !watched_.empty()) {
            running_ = true;
            asio::co_spawn(io_, run(), asio::detached);
        }
    }
    const bool any = std::any_of(published_.begin(), published_.end(), [](const auto& s) { return !s.empty(); });
    return any ? base->with_staples(published_) : base;
}

void OcspStapler::expire_staples(ocsp::SystemTime now) {
    for (const auto& identity : book_.expire(now)) {
        auto it = watched_.find(identity);
        spdlog::warn("OCSP: the stapled response for {} expired without a fresh one; stapling nothing until the "
                     "responder answers", it != watched_.end() ? it->second.name : identity);
    }
}

void OcspStapler::publish_if_changed() {
    auto staples = book_.staples();
    if (!base_ || staples == published_) return;
    published_ = staples;
    publish_(base_->with_staples(std::move(staples)));
}

asio::awaitable<void> OcspStapler::run() {
    auto stopped = stopped_; // outlives this object if the daemon ends first
    while (!*stopped) {
        auto now = std::chrono::system_clock::now();
        expire_staples(now);
        publish_if_changed();
        auto due = book_.due(now);
        if (due.empty()) {
            auto next = book_.next_event();
            auto wait = next ? std::chrono::duration_cast<std::chrono::milliseconds>(*next - now) : kMaxSleep;
            timer_.expires_after(std::clamp(wait, std::chrono::milliseconds(0), kMaxSleep));
            co_await timer_.async_wait(nothrow_awaitable); // cancelled by watch() and stop()
            continue;
        }
        for (const auto& identity : due) {
            auto it = watched_.find(identity);
            if (it == watched_.end()) { // cannot happen (rebased together); never spin on it
                book_.failed(identity, std::chrono::system_clock::now());
                continue;
            }
            Watched watched = it->second; // a reload may drop it while we wait
            auto result = co_await options_.fetch(watched.subject.url, watched.subject.request_der);
            if (*stopped) co_return;
            apply(identity, watched, result);
        }
        publish_if_changed();
    }
}

void OcspStapler::apply(const std::string& identity, const Watched& watched, const HttpResult& result) {
    const auto now = std::chrono::system_clock::now();
    const std::string& url = watched.subject.url;
    std::string error;
    if (!result.ok) {
        error = "responder " + url + ": " + result.error;
    } else if (result.status != 200) {
        error = "responder " + url + " answered HTTP " + std::to_string(result.status);
    } else if (result.body.size() > kMaxResponseBytes) {
        error = "responder " + url + " sent " + std::to_string(result.body.size()) + " bytes (too large to staple)";
    } else {
        auto verified = ocsp::verify_response(watched.subject, result.body, now);
        if (!verified.ok) {
            error = "response from " + url + " not usable: " + verified.error;
        } else if (verified.status == ocsp::CertStatus::good) {
            auto outcome = book_.good(identity, result.body, verified.next_update, now);
            if (!outcome.known) return;
            const std::string next = verified.next_update ? ocsp::format_time(*verified.next_update) : "none";
            if (outcome.before != StapleBook::State::good)
                spdlog::info("OCSP: stapling response for {} (good, next update {}; refresh in {})", watched.name,
                             next, describe(outcome.next_fetch));
            else
                spdlog::debug("OCSP: refreshed response for {} (good, next update {}; refresh in {})", watched.name,
                              next, describe(outcome.next_fetch));
            return;
        } else if (verified.status == ocsp::CertStatus::revoked) {
            auto outcome = book_.revoked(identity, verified.next_update, now);
            if (outcome.known && outcome.before != StapleBook::State::revoked)
                spdlog::error("OCSP: certificate for {} ({}) is {} according to {}; not stapling it: replace the "
                              "certificate", watched.name, watched.cert_path, verified.revocation, url);
            return;
        } else {
            error = "responder " + url + " does not know this certificate (status unknown)";
        }
    }
    auto outcome = book_.failed(identity, now);
    if (!outcome.known) return;
    const StapleBook::Entry* entry = book_.find(identity);
    std::string keeping = "serving it without a staple";
    if (entry && !entry->staple.empty())
        keeping = "keeping the stapled response until " +
                  (entry->staple_expires ? ocsp::format_time(*entry->staple_expires) : std::string("it is replaced"));
    if (outcome.before == StapleBook::State::pending || outcome.before == StapleBook::State::good)
        spdlog::warn("OCSP: no response for {}: {}; {} (retrying in {}, then less often)", watched.name, error,
                     keeping, describe(outcome.next_fetch));
    else
        spdlog::debug("OCSP: still no response for {}: {} (retrying in {})", watched.name, error,
                      describe(outcome.next_fetch));
}

} // namespace releasectl
