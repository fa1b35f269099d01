#include "releases/env_file.hpp"

#include "releases/fs_util.hpp"

#include <fmt/format.h>

namespace releasectl::releases {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

bool is_valid_key(std::string_view key) {
    if (key.empty() || (key[0] >= '0' && key[0] <= '9'))
        return false;
    for (char c : key)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    return true;
}

} // namespace

Result<EnvVars> parse_env_text(std::string_view text) {
    EnvVars vars;
    std::size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        std::size_t end = text.find('\n');
        std::string_view line = trim(text.substr(0, end));
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (line.empty() || line.front() == '#')
            continue;
        if (line.substr(0, 7) == "export ")
            line = trim(line.substr(7));
        std::size_t eq = line.find('=');
        if (eq == std::string_view::npos)
            return Result<EnvVars>::failure(fmt::format("line {}: expected KEY=VALUE", line_number));
        std::string_view key = trim(line.substr(0, eq));
        std::string_view value = trim(line.substr(eq + 1));
        if (!is_valid_key(key))
            return Result<EnvVars>::failure(fmt::format("line {}: invalid variable name '{}'", line_number, key));
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
            value = value.substr(1, value.size() - 2);
        vars.emplace_back(std::string(key), std::string(value));
    }
    return Result<EnvVars>::success(std::move(vars));
}

Result<EnvVars> read_env_file(const std::filesystem::path& path) {
    auto text = read_file(path);
    if (!text)
        return Result<EnvVars>::failure(text.error);
    auto parsed = parse_env_text(*text);
    if (!parsed)
        return Result<EnvVars>::failure(fmt::format("{}: {}", path.string(), parsed.error));
    return parsed;
}

std::string expand_variables(std::string_view text,
                             const std::function<std::optional<std::string>(std::string_view)>& lookup) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
            std::size_t close = text.find('}', i + 2);
            if (close != std::string_view::npos) {
                std::string_view name = text.substr(i + 2, close - i - 2);
                if (is_valid_key(name)) {
                    if (auto value = lookup(name)) {
                        out += *value;
                        i = close + 1;
                        continue;
                    }
                }
            }
        }
        out += text[i++];
    }
    return out;
}

} // namespace releasectl::releases
