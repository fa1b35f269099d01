#pragma once
// `releasectl release create PATH [--id ID]` and `releasectl releases [--json]`.
// They work on the release store directly (filesystem only, safe next to a
// running daemon: every change is an atomic rename). Exit codes: 0 ok,
// 1 failed, 2 usage.
#include <optional>
#include <string>

namespace releasectl {

struct Config;

// Creates a release from a directory or a tar archive, then applies
// retention ([releases] keep). Prints the new id.
int cmd_release_create(const Config& config, std::string path, std::optional<std::string> id);

// The store, newest first: id, created, size, bound slots, current/previous, bad.
int cmd_releases(const Config& config, bool json);

} // namespace releasectl
