#pragma once
// An app's environment: `env_file` parsing (KEY=VALUE lines, like Docker's
// --env-file and dotenv) and ${NAME} expansion in commands.
#include "releases/result.hpp"

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace releasectl::releases {

using EnvVars = std::vector<std::pair<std::string, std::string>>;

// Blank lines and lines starting with '#' are skipped; "export KEY=VALUE" is
// accepted; a value wrapped in matching single or double quotes is unwrapped
// (no escapes, no interpolation). A line without '=' or with an invalid key
// ([A-Za-z_][A-Za-z0-9_]*) fails, naming the line number.
Result<EnvVars> parse_env_text(std::string_view text);
Result<EnvVars> read_env_file(const std::filesystem::path& path);

// Replaces each ${NAME} for which `lookup` has a value; unknown names and a
// bare $NAME are left for the shell (which sees the same environment).
std::string expand_variables(std::string_view text,
                             const std::function<std::optional<std::string>(std::string_view)>& lookup);

} // namespace releasectl::releases
