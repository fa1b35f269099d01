// The only translation unit that parses TOML (toml++ is heavy to compile).
// Strict: every key is known (typos are errors), every value has its type, and
// every error names file:line:column and the full dotted key.
#include "controller/config.hpp"

#include "proxy/route_table.hpp"
#include "proxy/trusted_proxies.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <functional>
#include <limits>
#include <set>

namespace releasectl {

namespace {

namespace fs = std::filesystem;

// A key of a table and what to do with its value.
struct Field {
    const char* name;
    std::function<void(const toml::node&, const std::string& key)> apply;
};

class Parser {
public:
    explicit Parser(std::string source) : source_(std::move(source)) {}

    Config parse(std::string_view text) {
        toml::table document;
        try {
            document = toml::parse(text, source_);
        } catch (const toml::parse_error& error) {
            const auto& where = error.source().begin;
            throw ConfigError(fmt::format("{}:{}:{}: {}", source_, where.line, where.column, error.description()));
        }
        config_.path = source_;
        const toml::node* slots = nullptr;
        const toml::node* weights = nullptr;
        const toml::node* rollout = nullptr;
        visit(document, "",
              {
                  {"root", [&](auto& n, auto& k) { config_.root = string(n, k); }},
                  {"proxy", [&](auto& n, auto& k) { parse_proxy(table(n, k), k); }},
                  {"slots", [&](auto& n, auto&) { slots = &n; }},
                  {"weights", [&](auto& n, auto&) { weights = &n; }},
                  {"routing", [&](auto& n, auto& k) { parse_routing(table(n, k), k); }},
                  {"app", [&](auto& n, auto& k) { parse_app(table(n, k), k); }},
                  {"rollout", [&](auto& n, auto&) { rollout = &n; }},
                  {"metrics", [&](auto& n, auto& k) { parse_metrics(table(n, k), k); }},
                  {"admin", [&](auto& n, auto& k) { parse_admin(table(n, k), k); }},
                  {"releases", [&](auto& n, auto& k) { parse_releases(table(n, k), k); }},
                  {"notify", [&](auto& n, auto& k) { parse_notify(n, k); }},
                  {"analysis", [&](auto& n, auto& k) { parse_analysis(table(n, k), k); }},
                  {"log", [&](auto& n, auto& k) { parse_log(table(n, k), k); }},
                  {"tls", [&](auto& n, auto& k) { parse_tls(table(n, k), k); }},
              });
        // Order matters where keys refer to each other: slots before weights.
        parse_slots(slots);
        parse_weights(weights);
        if (rollout) parse_rollout(table(*rollout, "rollout"), "rollout");
        check_tls_listeners();
        resolve_paths();
        config_.proxy.access_log = config_.log.access_log;
        config_.proxy.access_log_path = config_.log.access_log_path;
        return std::move(config_);
    }

private:
    std::string source_;
    Config config_;
    const toml::node* listen_tls_node_ = nullptr;
    const toml::node* redirect_http_node_ = nullptr;

    [[noreturn]] void fail(const toml::source_region& where, const std::string& key, const std::string& message) const {
        throw ConfigError(fmt::format("{}:{}:{}: {}: {}", source_, where.begin.line, where.begin.column, key, message));
    }

    // Every key of `t` must be one of `fields`.
    void visit(const toml::table& t, const std::string& prefix, std::initializer_list<Field> fields) {
        for (auto&& [name, node] : t) {
            const std::string key = prefix.empty() ? std::string(name.str()) : prefix + "." + std::string(name.str());
            auto field = std::find_if(fields.begin(), fields.end(),
                                      [&](const Field& f) { return name.str() == f.name; });
            if (field == fields.end()) {
                std::string known;
                for (const Field& f : fields) known += (known.empty() ? "" : ", ") + std::string(f.name);
                fail(name.source(), key, fmt::format("unknown key (known keys{}: {})",
                                                     prefix.empty() ? "" : " in [" + prefix + "]", known));
            }
            field->apply(node, key);
        }
    }

    // --- typed values ----------------------------------------------------------

    const toml::table& table(const toml::node& n, const std::string& key) const {
        if (!n.is_table()) fail(n.source(), key, "expected a table");
        return *n.as_table();
    }
    std::string string(const toml::node& n, const std::string& key) const {
        if (!n.is_string()) fail(n.source(), key, "expected a string");
        return n.as_string()->get();
    }
    bool boolean(const toml::node& n, const std::string& key) const {
        if (!n.is_boolean()) fail(n.source(), key, "expected a boolean (true or false)");
        return n.as_boolean()->get();
    }
    std::int64_t integer(const toml::node& n, const std::string& key, std::int64_t min,
                         std::int64_t max = std::numeric_limits<std::int64_t>::max()) const {
        if (!n.is_integer()) fail(n.source(), key, "expected an integer");
        const std::int64_t value = n.as_integer()->get();
        if (value < min || value > max) {
            if (max == std::numeric_limits<std::int64_t>::max())
                fail(n.source(), key, fmt::format("must be at least {} (got {})", min, value));
            fail(n.source(), key, fmt::format("must be between {} and {} (got {})", min, max, value));
        }
        return value;
    }
    unsigned count(const toml::node& n, const std::string& key, std::int64_t min, std::int64_t max = 1'000'000) const {
        return static_cast<unsigned>(integer(n, key, min, max));
    }
    double number(const toml::node& n, const std::string& key, double min, double max) const {
        double value = 0;
        if (n.is_floating_point()) value = n.as_floating_point()->get();
        else if (n.is_integer()) value = static_cast<double>(n.as_integer()->get());
        else fail(n.source(), key, "expected a number");
        if (!(value >= min && value <= max))
            fail(n.source(), key, fmt::format("must be between {} and {} (got {})", min, max, value));
        return value;
    }
    Duration duration(const toml::node& n, const std::string& key, bool allow_zero = false) const {
        if (!n.is_string()) fail(n.source(), key, "expected a duration string such as \"250ms\", \"10s\", \"5m\", \"1h\"");
        auto parsed = proxy::parse_duration(n.as_string()->get());
        if (!parsed)
            fail(n.source(), key, fmt::format("invalid duration \"{}\" (use e.g. \"250ms\", \"10s\", \"5m\", \"1h\")",
                                              n.as_string()->get()));
        if (parsed->count() < 0 || (!allow_zero && parsed->count() == 0))
            fail(n.source(), key, allow_zero ? "must not be negative" : "must be greater than zero");
        return *parsed;
    }
    std::uint64_t size(const toml::node& n, const std::string& key) const {
        std::optional<std::uint64_t> parsed;
        if (n.is_integer()) {
            if (n.as_integer()->get() <= 0) fail(n.source(), key, "must be greater than zero");
            parsed = static_cast<std::uint64_t>(n.as_integer()->get());
        } else if (n.is_string()) {
            parsed = proxy::parse_size(n.as_string()->get());
            if (!parsed)
                fail(n.source(), key, fmt::format("invalid size \"{}\" (use e.g. \"64KiB\", \"10MiB\", \"1GiB\")",
                                                  n.as_string()->get()));
            if (*parsed == 0) fail(n.source(), key, "must be greater than zero");
        } else {
            fail(n.source(), key, "expected a size: an integer (bytes) or a string such as \"64KiB\"");
        }
        return *parsed;
    }
    const toml::array& array(const toml::node& n, const std::string& key, const char* of) const {
        if (!n.is_array()) fail(n.source(), key, fmt::format("expected an array of {}", of));
        return *n.as_array();
    }
    std::vector<std::string> strings(const toml::node& n, const std::string& key) const {
        std::vector<std::string> out;
        const toml::array& items = array(n, key, "strings");
        for (std::size_t i = 0; i < items.size(); ++i) out.push_back(string(*items.get(i), fmt::format("{}[{}]", key, i)));
        return out;
    }
    std::vector<unsigned> percents(const toml::node& n, const std::string& key) const {
        std::vector<unsigned> out;
        const toml::array& items = array(n, key, "integers");
        for (std::size_t i = 0; i < items.size(); ++i)
            out.push_back(count(*items.get(i), fmt::format("{}[{}]", key, i), 1, 100));
        return out;
    }
    proxy::ListenAddress listen_address(const toml::node& n, const std::string& key) const {
        std::string text = string(n, key), error;
        auto parsed = proxy::ListenAddress::parse(text, &error);
        if (!parsed) fail(n.source(), key, fmt::format("invalid listen address \"{}\": {}", text, error));
        return *parsed;
    }
    template <typename Enum>
    Enum choice(const toml::node& n, const std::string& key, std::initializer_list<std::pair<const char*, Enum>> options) const {
        const std::string text = string(n, key);
        std::string known;
        for (const auto& [name, value] : options) {
            if (text == name) return value;
            known += (known.empty() ? "\"" : ", \"") + std::string(name) + "\"";
        }
        fail(n.source(), key, fmt::format("unknown value \"{}\" (expected one of {})", text, known));
    }

    // --- sections ----------------------------------------------------------------

    void parse_proxy(const toml::table& t, const std::string& prefix) {
        proxy::ProxySettings& p = config_.proxy;
        auto timeout = [&](Duration& target) {
            return [&, target_ptr = &target](const toml::node& n, const std::string& k) { *target_ptr = duration(n, k); };
        };
        visit(t, prefix,
              {
                  {"listen",
                   [&](auto& n, auto& k) {
                       const toml::array& items = array(n, k, "\"host:port\" strings");
                       if (items.empty()) fail(n.source(), k, "needs at least one address");
                       p.listen.clear();
                       for (std::size_t i = 0; i < items.size(); ++i)
                           p.listen.push_back(listen_address(*items.get(i), fmt::format("{}[{}]", k, i)));
                   }},
                  {"workers", [&](auto& n, auto& k) { p.workers = count(n, k, 0, 1024); }},
                  {"max_uri_size", [&](auto& n, auto& k) { p.limits.max_uri_bytes = size(n, k); }},
                  {"max_header_size", [&](auto& n, auto& k) { p.limits.max_header_bytes = size(n, k); }},
                  {"max_header_count", [&](auto& n, auto& k) { p.limits.max_header_count = count(n, k, 1, 100'000); }},
                  {"max_body_size", [&](auto& n, auto& k) { p.limits.max_body_bytes = size(n, k); }},
                  {"max_response_header_size", [&](auto& n, auto& k) { p.limits.max_response_header_bytes = size(n, k); }},
                  {"trusted_proxies", [&](auto& n, auto& k) {
                       p.trusted_proxies = strings(n, k);
                       proxy::TrustedProxies check;
                       for (const auto& entry : p.trusted_proxies)
                           if (auto error = check.add(entry); !error.empty()) fail(n.source(), k, error);
                   }},
                  {"request_head_timeout", timeout(p.timeouts.request_head)},
                  {"request_body_timeout", timeout(p.timeouts.request_body)},
                  {"keepalive_timeout", timeout(p.timeouts.keepalive_idle)},
                  {"upstream_connect_timeout", timeout(p.timeouts.upstream_connect)},
                  {"upstream_response_timeout", timeout(p.timeouts.upstream_response)},
                  {"upstream_read_timeout", timeout(p.timeouts.upstream_read)},
                  {"upstream_idle_timeout", timeout(p.timeouts.upstream_idle)},
                  {"tunnel_idle_timeout", timeout(p.timeouts.tunnel_idle)},
                  {"drain_timeout", timeout(p.timeouts.drain)},
                  {"client_write_timeout", timeout(p.timeouts.client_write)},
                  {"upstream_max_idle", [&](auto& n, auto& k) { p.upstream_max_idle_per_slot = count(n, k, 0, 100'000); }},
                  {"listen_tls",
                   [&](auto& n, auto& k) {
                       const toml::array& items = array(n, k, "\"host:port\" strings");
                       p.listen_tls.clear();
                       for (std::size_t i = 0; i < items.size(); ++i)
                           p.listen_tls.push_back(listen_address(*items.get(i), fmt::format("{}[{}]", k, i)));
                       listen_tls_node_ = &n;
                   }},
                  {"redirect_http",
                   [&](auto& n, auto& k) {
                       p.redirect_http = boolean(n, k);
                       redirect_http_node_ = &n;
                   }},
                  {"tls_handshake_timeout", timeout(p.timeouts.tls_handshake)},
                  {"security_headers", [&](auto& n, auto& k) { parse_security_headers(table(n, k), k); }},
              });
    }

    // [proxy.security_headers]: header name = value; "" turns a default off.
    // Names are matched case-insensitively against a known list, so a typo is
    // an error instead of a header nobody asked for.
    void parse_security_headers(const toml::table& t, const std::string& prefix) {
        static constexpr std::array<std::string_view, 9> known{
            "Strict-Transport-Security",   "X-Content-Type-Options",       "X-Frame-Options",
            "Referrer-Policy",             "Content-Security-Policy",      "Permissions-Policy",
            "Cross-Origin-Opener-Policy",  "Cross-Origin-Resource-Policy", "Cross-Origin-Embedder-Policy"};
        auto& headers = config_.proxy.security_headers;
        for (auto&& [name, node] : t) {
            const std::string key = prefix + "." + std::string(name.str());
            auto canonical = std::find_if(known.begin(), known.end(), [&](std::string_view k) {
                return k.size() == name.str().size() &&
                       std::equal(k.begin(), k.end(), name.str().begin(), [](char a, char b) {
                           return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
                       });
            });
            if (canonical == known.end()) {
                std::string list;
                for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
                fail(name.source(), key, fmt::format("unknown security header (known: {})", list));
            }
            const std::string value = string(node, key);
            for (unsigned char c : value)
                if ((c < 0x20 && c != '\t') || c == 0x7f)
                    fail(node.source(), key, "control characters are not allowed in a header value");
            std::erase_if(headers, [&](const proxy::SecurityHeader& h) { return h.name == *canonical; });
            if (!value.empty())
                headers.push_back({std::string(*canonical), value, *canonical == "Strict-Transport-Security"});
        }
    }

    void parse_tls(const toml::table& t, const std::string& prefix) {
        visit(t, prefix,
              {{"certificates", [&](auto& n, auto& k) { parse_certificates(n, k); }},
               {"acme", [&](auto& n, auto& k) { parse_acme(table(n, k), k); }},
               {"ocsp_stapling", [&](auto& n, auto& k) { config_.tls.ocsp_stapling = boolean(n, k); }},
               {"ocsp_retry_interval", [&](auto& n, auto& k) { config_.tls.ocsp_retry_interval = duration(n, k); }}});
    }

    void parse_acme(const toml::table& t, const std::string& prefix) {
        AcmeConfig& a = config_.tls.acme;
        a.enabled = true;
        a.location = fmt::format("{}:{}:{}", source_, t.source().begin.line, t.source().begin.column);
        visit(t, prefix,
              {
                  {"directory",
                   [&](auto& n, auto& k) {
                       a.directory = string(n, k);
                       if (!a.directory.starts_with("https://")) fail(n.source(), k, "must be an https:// URL");
                   }},
                  {"domains",
                   [&](auto& n, auto& k) {
                       a.domains = strings(n, k);
                       for (const auto& domain : a.domains) {
                           const bool valid = !domain.empty() && domain.size() <= 253 &&
                                              std::all_of(domain.begin(), domain.end(), [](char c) {
                                                  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                                                         c == '.';
                                              });
                           if (!valid)
                               fail(n.source(), k, fmt::format("\"{}\" is not a DNS name (HTTP-01 cannot prove "
                                                               "wildcards)", domain));
                       }
                   }},
                  {"email", [&](auto& n, auto& k) { a.email = string(n, k); }},
                  {"storage", [&](auto& n, auto& k) { a.storage = path(n, k); }},
                  {"ca_bundle", [&](auto& n, auto& k) { a.ca_bundle = string(n, k); }},
                  {"renew_before", [&](auto& n, auto& k) { a.renew_before = duration(n, k); }},
                  {"retry_interval", [&](auto& n, auto& k) { a.retry_interval = duration(n, k); }},
                  {"check_interval", [&](auto& n, auto& k) { a.check_interval = duration(n, k); }},
              });
        if (a.directory.empty())
            fail(t.source(), prefix + ".directory",
                 "missing, e.g. directory = \"https://acme-v02.api.letsencrypt.org/directory\"");
        if (a.domains.empty()) fail(t.source(), prefix + ".domains", "needs at least one name, e.g. [\"example.com\"]");
    }

    void parse_certificates(const toml::node& n, const std::string& key) {
        if (!n.is_array_of_tables()) fail(n.source(), key, "expected [[tls.certificates]] tables with cert and key");
        const toml::array& items = *n.as_array();
        for (std::size_t i = 0; i < items.size(); ++i) {
            const std::string prefix = fmt::format("{}[{}]", key, i);
            const toml::table& entry = *items.get(i)->as_table();
            proxy::TlsCertificateFiles files;
            TlsConfig::Locations where;
            auto location = [&](const toml::node& v) {
                return fmt::format("{}:{}:{}", source_, v.source().begin.line, v.source().begin.column);
            };
            visit(entry, prefix,
                  {
                      {"cert", [&](auto& v, auto& k) { files.cert_path = path(v, k); where.cert = location(v); }},
                      {"key", [&](auto& v, auto& k) { files.key_path = path(v, k); where.key = location(v); }},
                  });
            if (files.cert_path.empty())
                fail(entry.source(), prefix + ".cert",
                     "missing: the PEM certificate with its chain, e.g. cert = \"/etc/releasectl/example.com.pem\"");
            if (files.key_path.empty())
                fail(entry.source(), prefix + ".key",
                     "missing: the PEM private key, e.g. key = \"/etc/releasectl/example.com.key\"");
            config_.proxy.certificates.push_back(std::move(files));
            config_.tls.certificate_locations.push_back(std::move(where));
        }
    }
    std::string path(const toml::node& n, const std::string& key) const {
        std::string text = string(n, key);
        if (text.empty()) fail(n.source(), key, "must not be empty");
        return text;
    }

    // Keys that refer to each other across [proxy] and [tls].
    void check_tls_listeners() {
        const proxy::ProxySettings& p = config_.proxy;
        if (!p.listen_tls.empty() && p.certificates.empty() && !config_.tls.acme.enabled)
            fail(listen_tls_node_->source(), "proxy.listen_tls",
                 "HTTPS listeners need at least one certificate: add a [[tls.certificates]] table with cert and key "
                 "(or [tls.acme])");
        if (config_.tls.acme.enabled && p.listen_tls.empty())
            throw ConfigError(config_.tls.acme.location + ": tls.acme: ACME certificates need an HTTPS listener "
                                                          "(proxy.listen_tls)");
        if (p.redirect_http && p.listen_tls.empty())
            fail(redirect_http_node_->source(), "proxy.redirect_http",
                 "redirecting to https needs an HTTPS listener (proxy.listen_tls)");
        for (const auto& secure : p.listen_tls)
            for (const auto& plain : p.listen)
                if (secure.host == plain.host && secure.port == plain.port)
                    fail(listen_tls_node_->source(), "proxy.listen_tls",
                         fmt::format("{} is also in proxy.listen: one port speaks either HTTP or HTTPS",
                                     secure.to_string()));
    }

    void parse_slots(const toml::node* node) {
        if (!node) {
            config_.slots = {SlotConfig{"blue", *proxy::UpstreamAddress::parse("127.0.0.1:9001", nullptr)},
                             SlotConfig{"green", *proxy::UpstreamAddress::parse("127.0.0.1:9002", nullptr)}};
            return;
        }
        const toml::table& slots = table(*node, "slots");
        if (slots.empty()) fail(node->source(), "slots", "declare at least one slot, e.g. [slots.blue]");
        if (slots.size() > proxy::kMaxSlots)
            fail(node->source(), "slots", fmt::format("at most {} slots (got {})", proxy::kMaxSlots, slots.size()));
        // toml++ tables are sorted by key; slots keep their declaration order.
        std::vector<std::pair<std::string, const toml::node*>> declared;
        for (auto&& [name, value] : slots) declared.emplace_back(std::string(name.str()), &value);
        std::stable_sort(declared.begin(), declared.end(), [](const auto& a, const auto& b) {
            const auto& x = a.second->source().begin;
            const auto& y = b.second->source().begin;
            return x.line != y.line ? x.line < y.line : x.column < y.column;
        });
        for (const auto& [name, value] : declared) {
            const std::string key = "slots." + name;
            const bool valid_name = !name.empty() && name.size() <= 32 &&
                                    std::all_of(name.begin(), name.end(), [](char c) {
                                        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
                                    });
            if (!valid_name) fail(value->source(), key, "slot names use letters, digits, '-' and '_' (at most 32)");
            const toml::table& slot_table = table(*value, key);
            SlotConfig slot{name, {}};
            slot.tls_location = fmt::format("{}:{}:{}", source_, value->source().begin.line, value->source().begin.column);
            bool has_upstream = false;
            const toml::node* tls_key = nullptr; // the first tls_* key, to point at when upstream is not https
            std::string tls_key_name;
            auto note_tls_key = [&](const toml::node& n, const std::string& k) {
                if (!tls_key) {
                    tls_key = &n;
                    tls_key_name = k;
                }
            };
            visit(slot_table, key,
                  {{"upstream", [&](auto& n, auto& k) {
                        std::string text = string(n, k), error;
                        auto parsed = proxy::UpstreamAddress::parse(text, &error);
                        if (!parsed) fail(n.source(), k, fmt::format("invalid upstream \"{}\": {}", text, error));
                        for (const SlotConfig& other : config_.slots)
                            if (other.upstream.kind == parsed->kind && other.upstream.host == parsed->host &&
                                other.upstream.port == parsed->port && other.upstream.path == parsed->path)
                                fail(n.source(), k, fmt::format("same upstream as slots.{}", other.name));
                        slot.upstream = *parsed;
                        has_upstream = true;
                    }},
                   {"tls_verify", [&](auto& n, auto& k) { slot.tls.verify = boolean(n, k); note_tls_key(n, k); }},
                   {"tls_ca_bundle", [&](auto& n, auto& k) {
                        slot.tls.ca_bundle = path(n, k);
                        slot.tls_location = fmt::format("{}:{}:{}", source_, n.source().begin.line, n.source().begin.column);
                        note_tls_key(n, k);
                    }},
                   {"tls_server_name", [&](auto& n, auto& k) {
                        slot.tls.server_name = string(n, k);
                        note_tls_key(n, k);
                        if (slot.tls.server_name.empty() ||
                            slot.tls.server_name.find_first_of(" /:\t") != std::string::npos)
                            fail(n.source(), k, "a host name such as \"app.internal\" (no port, no scheme)");
                    }}});
            if (!has_upstream)
                fail(value->source(), key + ".upstream", "missing (e.g. upstream = \"127.0.0.1:9001\")");
            if (tls_key && !slot.upstream.tls)
                fail(tls_key->source(), tls_key_name,
                     fmt::format("only for an https:// upstream (this slot's is {})", slot.upstream.to_string()));
            config_.slots.push_back(std::move(slot));
        }
    }

    void parse_weights(const toml::node* node) {
        for (const SlotConfig& slot : config_.slots) config_.weights[slot.name] = 0;
        if (!node) {
            config_.weights[config_.slots.front().name] = 100;
            return;
        }
        const toml::table& t = table(*node, "weights");
        unsigned total = 0;
        for (auto&& [name, value] : t) {
            const std::string key = "weights." + std::string(name.str());
            if (config_.slot_index(name.str()) < 0) {
                std::string known;
                for (const SlotConfig& slot : config_.slots) known += (known.empty() ? "" : ", ") + slot.name;
                fail(name.source(), key, fmt::format("unknown slot (slots: {})", known));
            }
            const unsigned weight = count(value, key, 0, 100);
            config_.weights[std::string(name.str())] = weight;
            total += weight;
        }
        if (total == 0) fail(node->source(), "weights", "all weights are zero: no slot would get traffic");
    }

    void parse_routing(const toml::table& t, const std::string& prefix) {
        RoutingConfig& r = config_.routing;
        visit(t, prefix,
              {
                  {"sticky", [&](auto& n, auto& k) { r.sticky = boolean(n, k); }},
                  {"override_header", [&](auto& n, auto& k) { r.override_header = string(n, k); }},
                  {"sticky_cookie",
                   [&](auto& n, auto& k) {
                       r.sticky_cookie = string(n, k);
                       if (r.sticky_cookie.empty()) fail(n.source(), k, "must not be empty");
                   }},
              });
    }

    void parse_app(const toml::table& t, const std::string& prefix) {
        AppConfig& a = config_.app;
        a.configured = true;
        const toml::node* command = nullptr;
        const toml::node* start = nullptr;
        const toml::node* stop = nullptr;
        visit(t, prefix,
              {
                  {"command", [&](auto& n, auto& k) { a.command = string(n, k); command = &n; }},
                  {"start", [&](auto& n, auto& k) { a.start = string(n, k); start = &n; }},
                  {"stop", [&](auto& n, auto& k) { a.stop = string(n, k); stop = &n; }},
                  {"health_path",
                   [&](auto& n, auto& k) {
                       a.health_path = string(n, k);
                       if (a.health_path.empty() || a.health_path.front() != '/')
                           fail(n.source(), k, "must start with '/' (e.g. \"/up\")");
                   }},
                  {"health_interval", [&](auto& n, auto& k) { a.health_interval = duration(n, k); }},
                  {"health_timeout", [&](auto& n, auto& k) { a.health_timeout = duration(n, k); }},
                  {"healthy_threshold", [&](auto& n, auto& k) { a.healthy_threshold = count(n, k, 1, 1000); }},
                  {"unhealthy_threshold", [&](auto& n, auto& k) { a.unhealthy_threshold = count(n, k, 1, 1000); }},
                  {"start_timeout", [&](auto& n, auto& k) { a.start_timeout = duration(n, k); }},
                  {"stop_timeout", [&](auto& n, auto& k) { a.stop_timeout = duration(n, k); }},
                  {"env_file", [&](auto& n, auto& k) { a.env_file = string(n, k); }},
                  {"before_activate", [&](auto& n, auto& k) { a.before_activate = string(n, k); }},
                  {"before_activate_timeout", [&](auto& n, auto& k) { a.before_activate_timeout = duration(n, k); }},
                  {"max_restarts", [&](auto& n, auto& k) { a.max_restarts = count(n, k, 0, 1000); }},
                  {"restart_window", [&](auto& n, auto& k) { a.restart_window = duration(n, k); }},
                  {"log_max_bytes", [&](auto& n, auto& k) { a.log_max_bytes = size(n, k); }},
                  {"log_keep", [&](auto& n, auto& k) { a.log_keep = count(n, k, 0, 100); }},
              });
        if (command && start)
            fail(start->source(), prefix + ".start",
                 "app.command and app.start are mutually exclusive: releasectl either runs the app "
                 "itself (command) or calls your hooks (start/stop)");
        if (stop && !start)
            fail(stop->source(), prefix + ".stop", "app.stop only applies together with app.start");
    }

    void parse_rollout(const toml::table& t, const std::string& prefix) {
        RolloutConfig& r = config_.rollout;
        const toml::node* steps = nullptr;
        const toml::node* pause_before = nullptr;
        const toml::node* max_step_duration = nullptr;
        visit(t, prefix,
              {
                  {"strategy",
                   [&](auto& n, auto& k) {
                       r.strategy = choice<Strategy>(n, k, {{"canary", Strategy::canary},
                                                            {"blue-green", Strategy::blue_green}});
                   }},
                  {"steps", [&](auto& n, auto& k) { r.steps = percents(n, k); steps = &n; }},
                  {"pause_before", [&](auto& n, auto& k) { r.pause_before = percents(n, k); pause_before = &n; }},
                  {"step_duration", [&](auto& n, auto& k) { r.step_duration = duration(n, k); }},
                  {"max_step_duration",
                   [&](auto& n, auto& k) { r.max_step_duration = duration(n, k); max_step_duration = &n; }},
                  {"check_interval", [&](auto& n, auto& k) { r.check_interval = duration(n, k); }},
                  {"min_requests",
                   [&](auto& n, auto& k) { r.min_requests = static_cast<std::uint64_t>(integer(n, k, 0)); }},
                  {"max_error_rate", [&](auto& n, auto& k) { r.max_error_rate = number(n, k, 0.0, 1.0); }},
                  {"max_p95", [&](auto& n, auto& k) { r.max_p95 = duration(n, k); }},
                  {"max_error_rate_increase",
                   [&](auto& n, auto& k) { r.max_error_rate_increase = number(n, k, 0.0, 1.0); }},
                  {"max_p95_ratio", [&](auto& n, auto& k) { r.max_p95_ratio = number(n, k, 1.0, 1000.0); }},
                  {"failure_threshold", [&](auto& n, auto& k) { r.failure_threshold = count(n, k, 1, 1000); }},
                  {"rollback_window", [&](auto& n, auto& k) { r.rollback_window = duration(n, k, true); }},
                  {"wait_for_promote", [&](auto& n, auto& k) { r.blue_green_wait_for_promote = boolean(n, k); }},
                  {"on_crash",
                   [&](auto& n, auto& k) {
                       r.on_crash = choice<RolloutConfig::OnCrash>(
                           n, k, {{"resume", RolloutConfig::OnCrash::resume},
                                  {"rollback", RolloutConfig::OnCrash::rollback}});
                   }},
              });
        if (steps) {
            if (r.steps.empty()) fail(steps->source(), prefix + ".steps", "needs at least one step (the last is 100)");
            for (std::size_t i = 1; i < r.steps.size(); ++i)
                if (r.steps[i] <= r.steps[i - 1])
                    fail(steps->source(), prefix + ".steps",
                         fmt::format("must be strictly increasing ({} after {})", r.steps[i], r.steps[i - 1]));
            if (r.steps.back() != 100)
                fail(steps->source(), prefix + ".steps", fmt::format("the last step must be 100 (got {})", r.steps.back()));
        }
        if (pause_before && r.strategy == Strategy::canary)
            for (unsigned gate : r.pause_before)
                if (std::find(r.steps.begin(), r.steps.end(), gate) == r.steps.end())
                    fail(pause_before->source(), prefix + ".pause_before",
                         fmt::format("{} is not one of the steps", gate));
        if (r.max_step_duration < r.step_duration)
            fail(max_step_duration ? max_step_duration->source() : t.source(), prefix + ".max_step_duration",
                 fmt::format("must be at least step_duration ({} < {})", proxy::format_duration(r.max_step_duration),
                             proxy::format_duration(r.step_duration)));
    }

    void parse_metrics(const toml::table& t, const std::string& prefix) {
        MetricsConfig& m = config_.metrics;
        visit(t, prefix,
              {
                  {"listen",
                   [&](auto& n, auto& k) {
                       m.listen = string(n, k);
                       if (!m.listen.empty()) listen_address(n, k);
                   }},
                  {"token", [&](auto& n, auto& k) { m.bearer_token = string(n, k); }},
              });
    }

    void parse_admin(const toml::table& t, const std::string& prefix) {
        AdminConfig& a = config_.admin;
        const toml::node* listen = nullptr;
        visit(t, prefix,
              {
                  {"socket", [&](auto& n, auto& k) { a.socket = string(n, k); }},
                  {"listen",
                   [&](auto& n, auto& k) {
                       a.tcp_listen = string(n, k);
                       if (!a.tcp_listen.empty()) listen_address(n, k);
                       listen = &n;
                   }},
                  {"token", [&](auto& n, auto& k) { a.token = string(n, k); }},
              });
        if (!a.tcp_listen.empty() && a.token.empty())
            fail(listen->source(), prefix + ".listen",
                 "a TCP admin listener needs admin.token (bearer token); the Unix socket needs none");
    }

    void parse_releases(const toml::table& t, const std::string& prefix) {
        ReleasesConfig& r = config_.releases;
        visit(t, prefix,
              {
                  {"keep", [&](auto& n, auto& k) { r.keep = count(n, k, 1, 10'000); }},
                  {"shared",
                   [&](auto& n, auto& k) {
                       r.shared = strings(n, k);
                       const toml::array& items = *n.as_array();
                       for (std::size_t i = 0; i < r.shared.size(); ++i) {
                           const fs::path path(r.shared[i]);
                           bool escapes = path.empty() || path.is_absolute();
                           for (const auto& part : path) escapes = escapes || part == "..";
                           if (escapes)
                               fail(items.get(i)->source(), fmt::format("{}[{}]", k, i),
                                    "must be a relative path inside the release (no '..')");
                       }
                   }},
              });
    }

    void parse_notify(const toml::node& n, const std::string& key) {
        if (!n.is_array_of_tables()) fail(n.source(), key, "expected [[notify]] tables");
        const toml::array& items = *n.as_array();
        for (std::size_t i = 0; i < items.size(); ++i) {
            const std::string prefix = fmt::format("{}[{}]", key, i);
            const toml::table& t = *items.get(i)->as_table();
            NotifyConfig notify;
            visit(t, prefix,
                  {
                      {"url",
                       [&](auto& v, auto& k) {
                           notify.url = string(v, k);
                           if (notify.url.rfind("http://", 0) != 0)
                               fail(v.source(), k, "must be an http:// URL");
                       }},
                      {"timeout", [&](auto& v, auto& k) { notify.timeout = duration(v, k); }},
                  });
            if (notify.url.empty()) fail(t.source(), prefix + ".url", "missing (e.g. url = \"http://127.0.0.1:9000/hook\")");
            config_.notify.push_back(std::move(notify));
        }
    }

    void parse_analysis(const toml::table& t, const std::string& prefix) {
        AnalysisConfig& a = config_.analysis;
        visit(t, prefix,
              {
                  {"source",
                   [&](auto& n, auto& k) {
                       a.source = string(n, k);
                       if (a.source != "builtin" && a.source != "prometheus")
                           fail(n.source(), k, fmt::format("unknown value \"{}\" (expected \"builtin\" or \"prometheus\")",
                                                           a.source));
                   }},
                  {"prometheus_url",
                   [&](auto& n, auto& k) {
                       a.prometheus_url = string(n, k);
                       if (!a.prometheus_url.empty() && a.prometheus_url.rfind("http://", 0) != 0)
                           fail(n.source(), k, "must be an http:// URL");
                   }},
                  {"requests_query", [&](auto& n, auto& k) { a.requests_query = query(n, k); }},
                  {"errors_query", [&](auto& n, auto& k) { a.errors_query = query(n, k); }},
                  {"p95_query", [&](auto& n, auto& k) { a.p95_query = query(n, k); }},
              });
        if (a.source == "prometheus" && a.prometheus_url.empty())
            fail(t.source(), prefix + ".prometheus_url", "required when analysis.source = \"prometheus\"");
    }
    std::string query(const toml::node& n, const std::string& key) const {
        std::string text = string(n, key);
        if (text.find("${slot}") == std::string::npos)
            fail(n.source(), key, "must contain ${slot} (the slot being judged)");
        return text;
    }

    void parse_log(const toml::table& t, const std::string& prefix) {
        LogConfig& l = config_.log;
        visit(t, prefix,
              {
                  {"level",
                   [&](auto& n, auto& k) {
                       l.level = string(n, k);
                       static const std::set<std::string> levels{"trace", "debug", "info", "warn",
                                                                 "error", "critical", "off"};
                       if (!levels.count(l.level))
                           fail(n.source(), k, fmt::format("unknown level \"{}\" (trace, debug, info, warn, error, "
                                                           "critical, off)", l.level));
                   }},
                  {"access_log", [&](auto& n, auto& k) { l.access_log = boolean(n, k); }},
                  {"access_log_path", [&](auto& n, auto& k) { l.access_log_path = string(n, k); }},
              });
    }

    // Relative paths in the file are relative to the file's directory.
    void resolve_paths() {
        const fs::path base = fs::path(source_).parent_path();
        auto resolve = [&](std::string& path) {
            if (path.empty() || fs::path(path).is_absolute()) return;
            path = fs::absolute(base / path).lexically_normal().string();
        };
        resolve(config_.root);
        resolve(config_.admin.socket);
        resolve(config_.log.access_log_path);
        for (auto& files : config_.proxy.certificates) {
            resolve(files.cert_path);
            resolve(files.key_path);
        }
        for (auto& slot : config_.slots) resolve(slot.tls.ca_bundle);
        resolve(config_.tls.acme.storage);
        resolve(config_.tls.acme.ca_bundle);
        if (config_.tls.acme.enabled && config_.tls.acme.storage.empty())
            config_.tls.acme.storage = (fs::path(config_.root) / ".releasectl" / "acme").string();
        while (config_.root.size() > 1 && config_.root.back() == '/') config_.root.pop_back();
    }
};

} // namespace

int Config::slot_index(std::string_view name) const {
    for (std::size_t i = 0; i < slots.size(); ++i)
        if (slots[i].name == name) return static_cast<int>(i);
    return -1;
}

std::string AcmeConfig::certificate_path() const {
    return (fs::path(storage) / (domains.empty() ? std::string("acme") : domains.front())).string() + ".pem";
}
std::string AcmeConfig::key_path() const {
    return (fs::path(storage) / (domains.empty() ? std::string("acme") : domains.front())).string() + ".key";
}
std::string AcmeConfig::account_key_path() const { return (fs::path(storage) / "account.key").string(); }

std::string Config::state_dir() const { return (fs::path(root) / ".releasectl").string(); }

std::string Config::admin_socket_path() const {
    return admin.socket.empty() ? (fs::path(state_dir()) / "admin.sock").string() : admin.socket;
}

Config parse_config(std::string_view toml_text, const std::string& source_name) {
    return Parser(source_name).parse(toml_text);
}

Config load_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ": cannot read the config file: " + std::strerror(errno));
    std::ostringstream content;
    content << in.rdbuf();
    return parse_config(content.str(), path);
}

} // namespace releasectl
