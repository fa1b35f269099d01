#pragma once
// Turns a config's [[tls.certificates]] into the proxy's TLS contexts, with
// errors phrased like every other config error.
#include "config.hpp"

#include <memory>
#include <string>
#include <vector>

namespace releasectl {
namespace proxy { class TlsContextSet; }

// Null when no certificate is configured. Throws ConfigError
// "file:line:column: tls.certificates[i].key: <why, naming the file>";
// `warnings` gets what is usable but suspicious (an expired certificate).
std::shared_ptr<const proxy::TlsContextSet> load_tls_contexts(const Config& config, std::vector<std::string>& warnings);

// Builds the TLS client of every https:// slot upstream (sets
// SlotConfig::upstream_tls). Throws ConfigError
// "file:line:column: slots.<name>.tls_ca_bundle: <why>".
void load_upstream_tls(Config& config);

// "2 certificates: example.com, *.example.com (default: example.com)" for logs.
std::string describe_tls_contexts(const proxy::TlsContextSet& contexts);

} // namespace releasectl
