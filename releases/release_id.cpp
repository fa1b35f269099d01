#include "releases/release_id.hpp"

#include <fmt/format.h>

#include <ctime>

namespace releasectl::releases {

namespace {

bool is_valid_name(std::string_view name, std::string_view what, std::string* why) {
    auto fail = [&](std::string message) {
        if (why)
            *why = std::move(message);
        return false;
    };
    if (name.empty() || name.size() > 64)
        return fail(fmt::format("{} must be 1 to 64 characters long", what));
    for (char c : name) {
        bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '-';
        if (!allowed)
            return fail(fmt::format("{} '{}' may only contain letters, digits, '.', '_' and '-'", what, name));
    }
    if (name.front() == '.')
        return fail(fmt::format("{} '{}' must not start with '.'", what, name));
    if (name.front() == '-')
        return fail(fmt::format("{} '{}' must not start with '-'", what, name));
    return true;
}

std::tm utc_tm(Clock::time_point when) {
    std::time_t seconds = Clock::to_time_t(when);
    std::tm tm{};
    ::gmtime_r(&seconds, &tm);
    return tm;
}

} // namespace

bool is_valid_release_id(std::string_view id, std::string* why) {
    return is_valid_name(id, "release id", why);
}

bool is_valid_slot_name(std::string_view name, std::string* why) {
    return is_valid_name(name, "slot name", why);
}

std::string release_id_for(Clock::time_point now) {
    std::tm tm = utc_tm(now);
    return fmt::format("{:04}{:02}{:02}{:02}{:02}{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string format_utc(Clock::time_point when) {
    std::tm tm = utc_tm(when);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
}

bool parse_utc(std::string_view text, Clock::time_point* out) {
    std::tm tm{};
    std::string copy(text);
    const char* end = ::strptime(copy.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end != '\0')
        return false;
    *out = Clock::from_time_t(::timegm(&tm));
    return true;
}

} // namespace releasectl::releases
