// Creating releases: directory copies, archive safety, id clashes, shared links.
#include "releases/create_release.hpp"
#include "releases/layout.hpp"
#include "releases/shared_links.hpp"
#include "tests/releases/store_test_support.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

using namespace releasectl::releases;
using releasectl::test::ArchiveEntry;
using releasectl::test::names_in;
using releasectl::test::read_text;
using releasectl::test::TempDir;
using releasectl::test::write_tar_gz;
using releasectl::test::write_text;
using Type = ArchiveEntry::Type;

namespace {

const Clock::time_point kNoon = Clock::from_time_t(1714564800); // 2024-05-01T12:00:00Z

CreateOptions with_id(std::string id) {
    CreateOptions options;
    options.id = std::move(id);
    options.now = kNoon;
    return options;
}

// After a failed create nothing may remain under releases/: no release, no temp dir.
void check_nothing_left_behind(const fs::path& root) {
    CHECK(names_in(StorePaths(root).releases_dir()).empty());
}

mode_t mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode;
}

} // namespace

TEST_CASE("ensure_layout creates the store's directories and is idempotent") {
    TempDir tmp;
    const fs::path root = tmp / "store";
    REQUIRE(ensure_layout(root).ok());
    REQUIRE(ensure_layout(root).ok());
    for (auto name : {"releases", "shared", "slots", ".releasectl", ".releasectl/logs"})
        CHECK(fs::is_directory(root / name));
}

TEST_CASE("a release id defaults to the UTC time and is validated") {
    CHECK(release_id_for(kNoon) == "20240501120000");
    std::string why;
    CHECK(is_valid_release_id("v1.2.3_rc-1"));
    CHECK_FALSE(is_valid_release_id("", &why));
    CHECK_FALSE(is_valid_release_id(".", &why));
    CHECK_FALSE(is_valid_release_id("..", &why));
    CHECK_FALSE(is_valid_release_id("a/b", &why));
    CHECK(why.find("a/b") != std::string::npos);
    CHECK_FALSE(is_valid_release_id(".tmp-x"));
    CHECK_FALSE(is_valid_release_id("-rf"));
    CHECK_FALSE(is_valid_release_id(std::string(65, 'a')));
    CHECK(is_valid_release_id(std::string(64, 'a')));

    TempDir tmp;
    write_text(tmp / "src/app.py", "print()\n");
    auto created = create_release(tmp / "store", tmp / "src", with_id("../evil"));
    CHECK_FALSE(created.ok());
    CHECK_FALSE(fs::exists(tmp / "evil"));
}

TEST_CASE("a default id comes from the injected clock") {
    TempDir tmp;
    write_text(tmp / "src/app.py", "print()\n");
    CreateOptions options;
    options.now = kNoon;
    auto created = create_release(tmp / "store", tmp / "src", options);
    REQUIRE_MESSAGE(created.ok(), created.error);
    CHECK(created->id == "20240501120000");
    CHECK(created->path == tmp / "store/releases/20240501120000");
}

TEST_CASE("creating from a directory keeps modes and inner symlinks") {
    TempDir tmp;
    const fs::path src = tmp / "src";
    write_text(src / "bin/server", "#!/bin/sh\n");
    ::chmod((src / "bin/server").c_str(), 0755);
    write_text(src / "public/index.html", "hello");
    fs::create_symlink("public/index.html", src / "index.html");
    fs::create_symlink("../public", src / "bin/assets");
    fs::create_symlink("missing-but-inside", src / "dangling");

    auto created = create_release(tmp / "store", src, with_id("r1"));
    REQUIRE_MESSAGE(created.ok(), created.error);
    const fs::path rel = created->path;
    CHECK((mode_of(rel / "bin/server") & 0777) == 0755);
    CHECK(read_text(rel / "public/index.html") == "hello");
    CHECK(fs::read_symlink(rel / "index.html") == "public/index.html");
    CHECK(read_text(rel / "bin/assets/index.html") == "hello");
    CHECK(fs::is_symlink(rel / "dangling"));
    CHECK(names_in(tmp / "store/releases") == std::vector<std::string>{"r1"});
}

TEST_CASE("a directory with an escaping symlink is refused and nothing is left behind") {
    TempDir tmp;
    const fs::path root = tmp / "store";
    write_text(tmp / "src/app.py", "x");

    SUBCASE("relative escape") { fs::create_symlink("../../etc/passwd", tmp / "src/passwd"); }
    SUBCASE("absolute target") { fs::create_symlink("/etc/passwd", tmp / "src/passwd"); }
    SUBCASE("chain of individually harmless links") {
        fs::create_symlink(".", tmp / "src/here");
        fs::create_symlink("here/..", tmp / "src/passwd");
    }
    auto created = create_release(root, tmp / "src", with_id("r1"));
    REQUIRE_FALSE(created.ok());
    CHECK(created.error.find("passwd") != std::string::npos);
    CHECK(created.error.find("outside the release") != std::string::npos);
    check_nothing_left_behind(root);
}

TEST_CASE("a directory holding a FIFO is refused") {
    TempDir tmp;
    write_text(tmp / "src/app.py", "x");
    REQUIRE(::mkfifo((tmp / "src/pipe").c_str(), 0600) == 0);
    auto created = create_release(tmp / "store", tmp / "src", with_id("r1"));
    REQUIRE_FALSE(created.ok());
    CHECK(created.error.find("pipe") != std::string::npos);
    check_nothing_left_behind(tmp / "store");
}

TEST_CASE("creating from a tar.gz unpacks files, modes, dirs, inner links and hard links") {
    TempDir tmp;
    const fs::path archive = tmp / "app.tar.gz";
    write_tar_gz(archive, {
                              {"./", Type::directory, "", 0755},
                              {"./bin/", Type::directory, "", 0755},
                              {"./bin/server", Type::file, "#!/bin/sh\necho hi\n", 04755},
                              {"./config/app.yml", Type::file, "port: 1\n", 0644},
                              {"./current-config", Type::symlink, "config/app.yml"},
                              {"./bin/server-again", Type::hardlink, "bin/server"},
                              {"./readonly/", Type::directory, "", 0555},
                          });
    auto created = create_release(tmp / "store", archive, with_id("r1"));
    REQUIRE_MESSAGE(created.ok(), created.error);
    const fs::path rel = created->path;
    CHECK(read_text(rel / "bin/server") == "#!/bin/sh\necho hi\n");
    CHECK((mode_of(rel / "bin/server") & 07777) == 0755); // setuid dropped
    CHECK(read_text(rel / "current-config") == "port: 1\n");
    CHECK(fs::equivalent(rel / "bin/server", rel / "bin/server-again"));
    CHECK((mode_of(rel / "readonly") & 0700) == 0700); // the store can always delete it
}

TEST_CASE("hostile archives are refused with a sentence, and nothing is left behind") {
    TempDir tmp;
    const fs::path root = tmp / "store";
    const fs::path archive = tmp / "evil.tar.gz";
    std::string expected;

    SUBCASE("path traversal") {
        write_tar_gz(archive, {{"ok.txt", Type::file, "x"}, {"../escaped.txt", Type::file, "pwned"}});
        expected = "'..'";
    }
    SUBCASE("traversal hidden in the middle") {
        write_tar_gz(archive, {{"a/b/../../../escaped.txt", Type::file, "pwned"}});
        expected = "'..'";
    }
    SUBCASE("absolute path") {
        write_tar_gz(archive, {{(tmp / "escaped.txt").string(), Type::file, "pwned"}});
        expected = "absolute path";
    }
    SUBCASE("symlink escaping with ..") {
        write_tar_gz(archive, {{"dir/link", Type::symlink, "../../escaped.txt"}});
        expected = "outside the release";
    }
    SUBCASE("absolute symlink") {
        write_tar_gz(archive, {{"link", Type::symlink, "/etc"}});
        expected = "outside the release";
    }
    SUBCASE("write through a symlink planted by an earlier entry") {
        // The link itself stays inside; the later entry would follow it elsewhere.
        write_tar_gz(archive, {{"sub/", Type::directory, ""}, {"link", Type::symlink, "sub"}, {"link/x", Type::file, "x"}});
        expected = "link";
    }
    SUBCASE("chain of links that escapes only when followed") {
        write_tar_gz(archive, {{"here", Type::symlink, "."}, {"up", Type::symlink, "here/.."}});
        expected = "outside the release";
    }
    SUBCASE("hard link to a file outside") {
        write_tar_gz(archive, {{"passwd", Type::hardlink, "/etc/passwd"}});
        expected = "hard link";
    }
    SUBCASE("hard link climbing out") {
        write_tar_gz(archive, {{"passwd", Type::hardlink, "../../etc/passwd"}});
        expected = "hard link";
    }
    SUBCASE("hard link through a symlink") {
        write_tar_gz(archive, {{"etc", Type::symlink, "."}, {"passwd", Type::hardlink, "etc/x"}});
        expected = "hard link";
    }
    SUBCASE("device file") {
        write_tar_gz(archive, {{"null", Type::char_device, ""}});
        expected = "character device";
    }
    SUBCASE("fifo") {
        write_tar_gz(archive, {{"pipe", Type::fifo, ""}});
        expected = "FIFO";
    }
    SUBCASE("empty archive") {
        write_tar_gz(archive, {});
        expected = "contains no files";
    }

    auto created = create_release(root, archive, with_id("r1"));
    REQUIRE_FALSE(created.ok());
    INFO(created.error);
    CHECK(created.error.find(expected) != std::string::npos);
    CHECK(created.error.find(archive.string()) != std::string::npos);
    check_nothing_left_behind(root);
    CHECK_FALSE(fs::exists(fs::symlink_status(tmp / "escaped.txt")));
    CHECK_FALSE(fs::exists(fs::symlink_status(root / "escaped.txt")));
}

TEST_CASE("a truncated or corrupt archive fails clearly and leaves nothing behind") {
    TempDir tmp;
    const fs::path root = tmp / "store";
    const fs::path archive = tmp / "app.tar.gz";
    std::string big;
    for (int i = 0; i < 20000; ++i) // poorly compressible content, so the cut lands mid-file
        big += std::to_string(i * 7919 % 10007) + ",";
    write_tar_gz(archive, {{"a.txt", Type::file, "first"}, {"big.txt", Type::file, big}, {"z.txt", Type::file, "z"}});

    SUBCASE("truncated") { fs::resize_file(archive, fs::file_size(archive) / 2); }
    SUBCASE("garbage") { write_text(archive, std::string(4096, 'x')); }

    auto created = create_release(root, archive, with_id("r1"));
    REQUIRE_FALSE(created.ok());
    INFO(created.error);
    CHECK(created.error.find(archive.string()) != std::string::npos);
    CHECK(created.error.find("truncated or corrupt") != std::string::npos);
    check_nothing_left_behind(root);
}

TEST_CASE("an existing id is an error and the existing release is never overwritten") {
    TempDir tmp;
    const fs::path root = tmp / "store";
    write_text(tmp / "v1/version", "1");
    write_text(tmp / "v2/version", "2");
    REQUIRE(create_release(root, tmp / "v1", with_id("same")).ok());

    auto again = create_release(root, tmp / "v2", with_id("same"));
    REQUIRE_FALSE(again.ok());
    CHECK(again.error.find("already exists") != std::string::npos);
    CHECK(read_text(root / "releases/same/version") == "1");
    CHECK(names_in(root / "releases") == std::vector<std::string>{"same"});
}

TEST_CASE("a missing source is an error") {
    TempDir tmp;
    auto created = create_release(tmp / "store", tmp / "nope", with_id("r1"));
    REQUIRE_FALSE(created.ok());
    CHECK(created.error.find("nope") != std::string::npos);
}

TEST_CASE("shared entries: created when missing, seeded from the first release, shared wins afterwards") {
    TempDir tmp;
    const fs::path root = tmp / "store";
    const std::vector<std::string> shared{"storage", ".env", "config/database.yml", "cache/"};
    CHECK(shared_kind_for("storage") == SharedKind::directory);
    CHECK(shared_kind_for(".env") == SharedKind::file);
    CHECK(shared_kind_for("config/database.yml") == SharedKind::file);
    CHECK(shared_kind_for("vendor.d/") == SharedKind::directory);

    write_text(tmp / "v1/app.py", "v1");
    write_text(tmp / "v1/.env", "SECRET=from-release-1\n");
    write_text(tmp / "v1/storage/seed.txt", "seed");
    CreateOptions first = with_id("r1");
    first.shared = shared;
    auto r1 = create_release(root, tmp / "v1", first);
    REQUIRE_MESSAGE(r1.ok(), r1.error);

    // Seeded from the release, then linked relatively.
    CHECK(read_text(root / "shared/.env") == "SECRET=from-release-1\n");
    CHECK(read_text(root / "shared/storage/seed.txt") == "seed");
    CHECK(fs::read_symlink(r1->path / "storage") == "../../shared/storage");
    CHECK(fs::read_symlink(r1->path / "config/database.yml") == "../../../shared/config/database.yml");
    // Missing everywhere: created by the naming rule.
    CHECK(fs::is_regular_file(root / "shared/config/database.yml"));
    CHECK(fs::is_directory(root / "shared/cache"));
    CHECK(fs::is_directory(root / "shared/storage"));
    CHECK(fs::equivalent(r1->path / ".env", root / "shared/.env"));

    // The second release brings its own .env and storage: shared/ keeps its content.
    write_text(tmp / "v2/app.py", "v2");
    write_text(tmp / "v2/.env", "SECRET=from-release-2\n");
    write_text(tmp / "v2/storage/other.txt", "other");
    CreateOptions second = with_id("r2");
    second.shared = shared;
    auto r2 = create_release(root, tmp / "v2", second);
    REQUIRE_MESSAGE(r2.ok(), r2.error);
    CHECK(read_text(r2->path / ".env") == "SECRET=from-release-1\n");
    CHECK(fs::exists(r2->path / "storage/seed.txt"));
    CHECK_FALSE(fs::exists(root / "shared/storage/other.txt"));
    CHECK(fs::is_symlink(r2->path / "storage"));
}

TEST_CASE("a shared entry with .. is a configuration error") {
    TempDir tmp;
    write_text(tmp / "src/app.py", "x");
    CreateOptions options = with_id("r1");
    options.shared = {"../outside"};
    auto created = create_release(tmp / "store", tmp / "src", options);
    REQUIRE_FALSE(created.ok());
    CHECK(created.error.find("shared") != std::string::npos);
    check_nothing_left_behind(tmp / "store");
}
