#include "controller/acme_client.hpp"

#include "controller/acme_crypto.hpp"
#include "controller/atomic_file.hpp"
#include "controller/https_client.hpp"
#include "proxy/acme_challenges.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

namespace releasectl {
namespace asio = boost::asio;
namespace json = boost::json;

namespace {
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr int kMaxPolls = 120;
constexpr std::chrono::milliseconds kPollInterval{500};

std::optional<json::object> parse_object(const std::string& text) {
    boost::system::error_code ec;
    json::value value = json::parse(text, ec);
    if (ec || !value.is_object()) return std::nullopt;
    return value.as_object();
}

std::string string_field(const json::object& object, std::string_view key) {
    auto it = object.find(key);
    return it != object.end() && it->value().is_string() ? std::string(it->value().as_string()) : std::string();
}

// "urn:ietf:params:acme:error:rejectedIdentifier: ..." from an ACME problem document.
std::string problem_text(const HttpsResponse& response) {
    if (!response.ok) return response.error;
    auto problem = parse_object(response.body);
    if (!problem) return "HTTP " + std::to_string(response.status);
    std::string type = string_field(*problem, "type");
    std::string detail = string_field(*problem, "detail");
    return "HTTP " + std::to_string(response.status) + " " + type + (detail.empty() ? "" : ": " + detail);
}

bool is_bad_nonce(const HttpsResponse& response) {
    return response.ok && response.status == 400 &&
           response.body.find("urn:ietf:params:acme:error:badNonce") != std::string::npos;
}

// Request payloads, built outside the coroutines (GCC 12 mishandles braced
// initializer lists of string literals inside a coroutine frame).
std::string new_account_payload(const std::string& email) {
    json::object account{{"termsOfServiceAgreed", true}};
    if (!email.empty()) account["contact"] = json::array{json::value("mailto:" + email)};
    return json::serialize(account);
}

std::string new_order_payload(const std::vector<std::string>& domains) {
    json::array identifiers;
    for (const auto& domain : domains) identifiers.push_back(json::object{{"type", "dns"}, {"value", domain}});
    return json::serialize(json::object{{"identifiers", identifiers}});
}

std::string finalize_payload(const std::string& csr_der) {
    return json::serialize(json::object{{"csr", acme::base64url(csr_der)}});
}

std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
    return out;
}

void ensure_directory(const std::string& path) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, ec);
}

} // namespace

struct AcmeClient::State {
    std::optional<acme::AccountKey> account;
    Directory directory;
    std::string nonce;
    std::string account_url; // the "kid"
};

AcmeClient::AcmeClient(asio::io_context& io, AcmeConfig config, Hooks hooks)
    : io_(io), config_(std::move(config)), hooks_(std::move(hooks)), timer_(io),
      stopped_(std::make_shared<bool>(false)), state_(std::make_unique<State>()) {}

AcmeClient::~AcmeClient() { stop(); }

void AcmeClient::start() {
    asio::co_spawn(io_, maintain(), asio::detached);
}

void AcmeClient::stop() {
    *stopped_ = true;
    timer_.cancel();
}

void AcmeClient::ensure_placeholder(const AcmeConfig& config) {
    if (acme::inspect_certificate_file(config.certificate_path())) return;
    ensure_directory(config.storage);
    std::string error;
    auto placeholder = acme::make_self_signed(config.domains, &error);
    if (!placeholder) throw ConfigError(config.location + ": tls.acme: " + error);
    // Key first: a certificate file never names a key that is not there yet.
    if (auto written = write_file_atomically(config.key_path(), placeholder->key_pem, 0600); !written)
        throw ConfigError(config.location + ": tls.acme.storage: " + written.error);
    if (auto written = write_file_atomically(config.certificate_path(), placeholder->certificate_pem, 0644); !written)
        throw ConfigError(config.location + ": tls.acme.storage: " + written.error);
}

bool AcmeClient::needs_certificate() const {
    auto state = acme::inspect_certificate_file(config_.certificate_path());
    if (!state || state->self_signed) return true;
    auto wanted = config_.domains;
    for (auto& name : wanted)
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::sort(wanted.begin(), wanted.end());
    auto have = state->names;
    std::sort(have.begin(), have.end());
    if (wanted != have) return true;
    auto renew_before = std::chrono::duration_cast<std::chrono::seconds>(config_.renew_before).count();
    return state->seconds_left < renew_before;
}

asio::awaitable<void> AcmeClient::sleep_for(std::chrono::milliseconds duration) {
    timer_.expires_after(duration);
    co_await timer_.async_wait(nothrow_awaitable);
}

asio::awaitable<void> AcmeClient::maintain() {
    auto stopped = stopped_; // outlives this object if the daemon ends first
    while (!*stopped) {
        if (needs_certificate()) {
            spdlog::info("ACME: ordering a certificate for {} from {}", joined(config_.domains), config_.directory);
            auto error = co_await obtain();
            if (*stopped) co_return;
            if (hooks_.publish_challenges) hooks_.publish_challenges(nullptr);
            if (error) {
                spdlog::error("ACME: no certificate for {}: {} (retrying in {})", joined(config_.domains), *error,
                              proxy::format_duration(config_.retry_interval));
                co_await sleep_for(config_.retry_interval);
                continue;
            }
            auto state = acme::inspect_certificate_file(config_.certificate_path());
            spdlog::info("ACME: certificate for {} issued, valid until {}", joined(config_.domains),
                         state ? state->not_after : "?");
            if (hooks_.certificate_changed) hooks_.certificate_changed();
        }
        co_await sleep_for(config_.check_interval);
    }
}

asio::awaitable<HttpsResponse> AcmeClient::get(const std::string& url, const std::string& method) {
    HttpsRequest request;
    request.method = method;
    request.url = url;
    request.ca_bundle = config_.ca_bundle;
    auto response = co_await https_request(io_, std::move(request));
    if (!response.replay_nonce.empty()) state_->nonce = response.replay_nonce;
    co_return response;
}

asio::awaitable<HttpsResponse> AcmeClient::post(const std::string& url, const std::string& payload) {
    HttpsResponse response;
    for (int attempt = 0; attempt < 5; ++attempt) {
        if (state_->nonce.empty()) {
            auto fresh = co_await get(state_->directory.new_nonce, "HEAD");
            if (!fresh.ok || state_->nonce.empty()) {
                response = fresh;
                if (response.error.empty()) response.error = "no Replay-Nonce from " + state_->directory.new_nonce;
                response.ok = false;
                co_return response;
            }
        }
        auto body = state_->account->sign(url, state_->nonce, state_->account_url, payload);
        state_->nonce.clear(); // every nonce is good for one request
        if (!body) {
            response.ok = false;
            response.error = "cannot sign the request";
            co_return response;
        }
        HttpsRequest request;
        request.method = "POST";
        request.url = url;
        request.body = std::move(*body);
        request.content_type = "application/jose+json";
        request.ca_bundle = config_.ca_bundle;
        response = co_await https_request(io_, std::move(request));
        if (!response.replay_nonce.empty()) state_->nonce = response.replay_nonce;
        if (!is_bad_nonce(response)) break; // servers may reject any nonce; the answer carries a new one
    }
    co_return response;
}

asio::awaitable<std::optional<std::string>> AcmeClient::obtain() {
    State& s = *state_;
    ensure_directory(config_.storage);
    if (!s.account) {
        std::string error;
        s.account = acme::AccountKey::load_or_create(config_.account_key_path(), &error);
        if (!s.account) co_return error;
    }

    // Directory and account (newAccount with an existing key returns it).
    auto directory = co_await get(config_.directory);
    auto index = directory.ok && directory.status == 200 ? parse_object(directory.body) : std::nullopt;
    if (!index) co_return "directory " + config_.directory + ": " + problem_text(directory);
    s.directory = {string_field(*index, "newNonce"), string_field(*index, "newAccount"), string_field(*index, "newOrder")};
    if (s.directory.new_nonce.empty() || s.directory.new_account.empty() || s.directory.new_order.empty())
        co_return "directory " + config_.directory + " lacks newNonce/newAccount/newOrder";
    s.account_url.clear();
    auto created = co_await post(s.directory.new_account, new_account_payload(config_.email));
    if (!created.ok || (created.status != 200 && created.status != 201) || created.location.empty())
        co_return "newAccount: " + problem_text(created);
    s.account_url = created.location;

    // The order and its authorizations.
    auto ordered = co_await post(s.directory.new_order, new_order_payload(config_.domains));
    auto order = ordered.ok && ordered.status == 201 ? parse_object(ordered.body) : std::nullopt;
    if (!order || ordered.location.empty()) co_return "newOrder: " + problem_text(ordered);
    const std::string order_url = ordered.location;
    const std::string finalize_url = string_field(*order, "finalize");
    std::vector<std::string> authorizations;
    if (auto it = order->find("authorizations"); it != order->end() && it->value().is_array())
        for (const auto& url : it->value().as_array())
            if (url.is_string()) authorizations.emplace_back(url.as_string());

    auto challenges = std::make_shared<proxy::AcmeChallenges>();
    std::vector<std::string> challenge_urls, pending;
    for (const auto& url : authorizations) {
        auto fetched = co_await post(url, "");
        auto authorization = fetched.ok && fetched.status == 200 ? parse_object(fetched.body) : std::nullopt;
        if (!authorization) co_return "authorization " + url + ": " + problem_text(fetched);
        if (string_field(*authorization, "status") == "valid") continue; // still valid from an earlier order
        bool found = false;
        if (auto it = authorization->find("challenges"); it != authorization->end() && it->value().is_array()) {
            for (const auto& item : it->value().as_array()) {
                if (!item.is_object() || string_field(item.as_object(), "type") != "http-01") continue;
                const std::string token = string_field(item.as_object(), "token");
                challenges->entries.push_back({token, token + "." + s.account->thumbprint()});
                challenge_urls.push_back(string_field(item.as_object(), "url"));
                found = true;
                break;
            }
        }
        if (!found) co_return "authorization " + url + " offers no http-01 challenge";
        pending.push_back(url);
    }
    if (hooks_.publish_challenges) hooks_.publish_challenges(challenges);
    for (const auto& url : challenge_urls) {
        auto answered = co_await post(url, "{}");
        if (!answered.ok || answered.status != 200) co_return "challenge " + url + ": " + problem_text(answered);
    }
    for (const auto& url : pending) {
        for (int poll = 0;; ++poll) {
            if (poll == kMaxPolls) co_return "authorization " + url + " still pending after " + std::to_string(kMaxPolls) + " polls";
            co_await sleep_for(kPollInterval);
            if (*stopped_) co_return std::string("stopped");
            auto fetched = co_await post(url, "");
            auto authorization = fetched.ok && fetched.status == 200 ? parse_object(fetched.body) : std::nullopt;
            if (!authorization) co_return "authorization " + url + ": " + problem_text(fetched);
            const std::string status = string_field(*authorization, "status");
            if (status == "valid") break;
            if (status != "pending" && status != "processing") {
                std::string why = json::serialize(*authorization);
                co_return "authorization for " + url + " is " + status + ": " + why.substr(0, 600);
            }
        }
    }

    // Finalize with a CSR for a fresh key, wait for the certificate, fetch it.
    std::string error;
    auto request = acme::make_certificate_request(config_.domains, &error);
    if (!request) co_return error;
    auto finalized = co_await post(finalize_url, finalize_payload(request->csr_der));
    if (!finalized.ok || finalized.status != 200) co_return "finalize: " + problem_text(finalized);
    std::string certificate_url;
    for (int poll = 0; certificate_url.empty(); ++poll) {
        if (poll == kMaxPolls) co_return "order " + order_url + " not valid after " + std::to_string(kMaxPolls) + " polls";
        if (poll > 0) co_await sleep_for(kPollInterval);
        if (*stopped_) co_return std::string("stopped");
        HttpsResponse fetched = finalized;
        if (poll > 0) fetched = co_await post(order_url, "");
        auto state = fetched.ok && fetched.status == 200 ? parse_object(fetched.body) : std::nullopt;
        if (!state) co_return "order " + order_url + ": " + problem_text(fetched);
        const std::string status = string_field(*state, "status");
        if (status == "valid") certificate_url = string_field(*state, "certificate");
        else if (status == "invalid") co_return "order " + order_url + " became invalid";
    }
    auto downloaded = co_await post(certificate_url, "");
    if (!downloaded.ok || downloaded.status != 200 || downloaded.body.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
        co_return "certificate " + certificate_url + ": " + problem_text(downloaded);

    // Key before certificate; each rename is atomic, and TLS reloads only after both.
    if (auto written = write_file_atomically(config_.key_path(), request->key_pem, 0600); !written) co_return written.error;
    if (auto written = write_file_atomically(config_.certificate_path(), downloaded.body, 0644); !written)
        co_return written.error;
    co_return std::nullopt;
}

} // namespace releasectl
