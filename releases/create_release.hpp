#pragma once
// Creating a release: copy a directory or unpack an archive into
// releases/.tmp-<id>-<random>, link shared entries, then rename into
// releases/<id>. A clash or a half-written release never becomes visible.
#include "releases/release_id.hpp"
#include "releases/result.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace releasectl::releases {

namespace fs = std::filesystem;

struct CreatedRelease {
    std::string id;
    fs::path path;
};

struct CreateOptions {
    std::optional<std::string> id;   // default: release_id_for(now)
    std::vector<std::string> shared; // [releases] shared
    Clock::time_point now = Clock::now(); // id and recorded creation time
};

// `source`: a directory (copied) or a tar archive such as .tar.gz (unpacked).
// Fails, leaving nothing under releases/, on: an invalid or existing id,
// unsafe archive contents, I/O errors. Existing releases are never replaced.
Result<CreatedRelease> create_release(const fs::path& root, const fs::path& source, const CreateOptions& options);

// The brief's short form.
Result<CreatedRelease> create_release(const fs::path& root, const fs::path& source, std::optional<std::string> id,
                                      const std::vector<std::string>& shared);

} // namespace releasectl::releases
