#include "tls_loader.hpp"

#include "proxy/tls_context.hpp"
#include "proxy/upstream_tls.hpp"

#include <fmt/format.h>

#include <filesystem>

namespace releasectl {

std::shared_ptr<const proxy::TlsContextSet> load_tls_contexts(const Config& config, std::vector<std::string>& warnings) {
    auto files = config.proxy.certificates;
    const auto& acme = config.tls.acme;
    // The ACME certificate comes after the configured ones (so the first of
    // those stays the default); before its first order there may be none yet.
    if (acme.enabled) {
        std::error_code ec;
        if (std::filesystem::exists(acme.certificate_path(), ec)) files.push_back({acme.certificate_path(), acme.key_path()});
        else warnings.push_back("no ACME certificate yet for " + acme.domains.front() + " (" + acme.certificate_path() +
                                "): `serve` starts with a self-signed placeholder and orders one");
    }
    if (files.empty()) return nullptr;
    auto loaded = proxy::TlsContextSet::load(files);
    if (loaded.error) {
        const auto& error = *loaded.error;
        if (error.index >= config.tls.certificate_locations.size())
            throw ConfigError(fmt::format("{}: tls.acme: {}", acme.location, error.message));
        const auto& locations = config.tls.certificate_locations[error.index];
        const std::string& where = error.field == "key" ? locations.key : locations.cert;
        throw ConfigError(fmt::format("{}: tls.certificates[{}].{}: {}", where, error.index, error.field, error.message));
    }
    warnings.insert(warnings.end(), loaded.warnings.begin(), loaded.warnings.end());
    return std::move(loaded.contexts);
}

void load_upstream_tls(Config& config) {
    for (auto& slot : config.slots) {
        slot.upstream_tls.reset();
        if (!slot.upstream.tls) continue;
        auto created = proxy::UpstreamTlsClient::create(slot.tls, slot.upstream.host);
        if (!created.client)
            throw ConfigError(fmt::format("{}: slots.{}.tls_ca_bundle: {}", slot.tls_location, slot.name, created.error));
        slot.upstream_tls = std::move(created.client);
    }
}

std::string describe_tls_contexts(const proxy::TlsContextSet& contexts) {
    std::string names;
    for (const auto& certificate : contexts.certificates()) {
        std::string these;
        for (const auto& name : certificate.dns_names) these += (these.empty() ? "" : " ") + name;
        names += (names.empty() ? "" : ", ") + (these.empty() ? certificate.cert_path : these);
    }
    const auto& first = contexts.certificates().front();
    return fmt::format("{} certificate{}: {} (default: {}, valid until {})", contexts.certificates().size(),
                       contexts.certificates().size() == 1 ? "" : "s", names,
                       first.dns_names.empty() ? first.cert_path : first.dns_names.front(), first.not_after);
}

} // namespace releasectl
