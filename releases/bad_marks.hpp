#pragma once
// A release that was rolled back is marked bad (who, when, why) so that
// `rollback` skips it. Releases are immutable, so the mark lives beside them:
// <root>/.releasectl/bad/<id>.json.
#include "releases/release_id.hpp"
#include "releases/result.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace releasectl::releases {

namespace fs = std::filesystem;

struct BadMark {
    std::string id;
    std::string who;  // "rollout", "operator", a user name
    std::string why;  // "error rate 12% > 5% at step 25%"
    Clock::time_point when{};
};

// Marks (or re-marks) an existing release as bad; written atomically.
Status mark_bad(const fs::path& root, std::string_view id, std::string_view who, std::string_view why,
                Clock::time_point now = Clock::now());
// Removes a mark (an operator vouching for the release again). Missing mark = success.
Status clear_bad(const fs::path& root, std::string_view id);

std::optional<BadMark> bad_mark(const fs::path& root, std::string_view id);
bool is_bad(const fs::path& root, std::string_view id);

} // namespace releasectl::releases
