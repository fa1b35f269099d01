// Pieces the supervisor uses from the store: rotating logs and env files.
#include "releases/env_file.hpp"
#include "releases/rotating_log.hpp"
#include "tests/releases/store_test_support.hpp"

#include <doctest/doctest.h>

using namespace releasectl::releases;
using releasectl::test::names_in;
using releasectl::test::read_text;
using releasectl::test::TempDir;

TEST_CASE("the rotating log caps each file and keeps log_keep rotations") {
    TempDir tmp;
    RotatingLog log(tmp / "logs/blue.log", 100, 2);
    for (int i = 0; i < 10; ++i)
        REQUIRE(log.write(std::string(40, static_cast<char>('a' + i))).ok());
    CHECK(names_in(tmp / "logs") == std::vector<std::string>{"blue.log", "blue.log.1", "blue.log.2"});
    CHECK(read_text(tmp / "logs/blue.log") == std::string(40, 'i') + std::string(40, 'j'));
    CHECK(read_text(tmp / "logs/blue.log.1") == std::string(40, 'g') + std::string(40, 'h'));
    CHECK(read_text(tmp / "logs/blue.log.2") == std::string(40, 'e') + std::string(40, 'f'));
    for (auto name : names_in(tmp / "logs"))
        CHECK(fs::file_size(tmp / "logs" / name) <= 100);

    // An oversized chunk still goes out whole, into a fresh file.
    REQUIRE(log.write(std::string(250, 'z')).ok());
    CHECK(fs::file_size(tmp / "logs/blue.log") == 250);
}

TEST_CASE("the rotating log appends to an existing file") {
    TempDir tmp;
    {
        RotatingLog log(tmp / "a.log", 1000, 1);
        REQUIRE(log.write("one\n").ok());
    }
    RotatingLog log(tmp / "a.log", 1000, 1);
    REQUIRE(log.write("two\n").ok());
    CHECK(read_text(tmp / "a.log") == "one\ntwo\n");
}

TEST_CASE("env files: KEY=VALUE, comments, export, quotes; errors name the line") {
    auto parsed = parse_env_text("# comment\n\nDATABASE_URL=postgres://x\nexport MODE = production \r\n"
                                 "QUOTED=\"a b\"\nSINGLE='c=d'\nEMPTY=\n");
    REQUIRE_MESSAGE(parsed.ok(), parsed.error);
    CHECK(*parsed == EnvVars{{"DATABASE_URL", "postgres://x"},
                             {"MODE", "production"},
                             {"QUOTED", "a b"},
                             {"SINGLE", "c=d"},
                             {"EMPTY", ""}});
    auto bad = parse_env_text("OK=1\nthis is not an assignment\n");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error.find("line 2") != std::string::npos);
    CHECK_FALSE(parse_env_text("1BAD=x\n").ok());
}

TEST_CASE("${NAME} expansion replaces known names only") {
    auto lookup = [](std::string_view name) -> std::optional<std::string> {
        if (name == "PORT")
            return "9001";
        if (name == "SLOT")
            return "blue";
        return std::nullopt;
    };
    CHECK(expand_variables("bin/server --port ${PORT} --slot=${SLOT}", lookup) ==
          "bin/server --port 9001 --slot=blue");
    CHECK(expand_variables("${UNKNOWN} $PORT ${ bad} ${PORT", lookup) == "${UNKNOWN} $PORT ${ bad} ${PORT");
}
