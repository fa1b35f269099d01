#pragma once
// Release ids: UTC "YYYYmmddHHMMSS" by default, or an operator-given name.
#include <chrono>
#include <string>
#include <string_view>

namespace releasectl::releases {

using Clock = std::chrono::system_clock;

// Valid ids (and slot names) are 1..64 characters of [A-Za-z0-9._-], do not start
// with '.' (releases/.tmp-* and releases/.trash-* are the store's own names) or
// '-' (would read as a CLI option). On failure *why (if given) gets a sentence.
bool is_valid_release_id(std::string_view id, std::string* why = nullptr);
bool is_valid_slot_name(std::string_view name, std::string* why = nullptr);

// The default id for a release created at `now`: UTC YYYYmmddHHMMSS.
std::string release_id_for(Clock::time_point now);

// "2024-05-01T12:00:00Z" and back (nullopt-free: returns false on garbage).
std::string format_utc(Clock::time_point when);
bool parse_utc(std::string_view text, Clock::time_point* out);

} // namespace releasectl::releases
