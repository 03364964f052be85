// The failing test engines behave as their names say, under the real
// docker.socket / docker.service of a sandbox.
#include <gtest/gtest.h>

#include <elf.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "sandbox.hpp"

namespace fs = std::filesystem;
using armdock::test::Sandbox;
using namespace std::chrono_literals;

namespace {

fs::path engine(const std::string& name)
{
    return armdock::test::enginesDir() / name;
}

uint16_t elfMachine(const fs::path& file)
{
    auto bytes = armdock::test::readFile(file);
    if (bytes.size() < sizeof(Elf64_Ehdr) || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0)
        return 0;
    Elf64_Ehdr header;
    std::memcpy(&header, bytes.data(), sizeof header);
    return header.e_machine;
}

// Stops the engine, puts `name` in its place, starts docker.service again.
armdock::test::CommandResult swapIn(Sandbox& sb, const std::string& name)
{
    sb.stopUnits({"docker.service"});
    armdock::test::installExecutable(engine(name), sb.payloadPath("docker"));
    return sb.systemctl({"start", "docker.service"});
}

class Engines : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (armdock::test::enginesDir().empty())
            GTEST_SKIP() << "ARMDOCK_ENGINES_DIR is not set (run through meson test)";
    }
};

}  // namespace

TEST_F(Engines, AreElfForThisMachineAndPrintTheirVersion)
{
    armdock::test::SandboxOptions options;
    options.startDocker = false;
    Sandbox sb(options);
    const auto machine = elfMachine("/usr/sbin/dockerd");
    ASSERT_NE(machine, 0);
    const std::string real = "Docker version 20.10.24+dfsg1, build 5d6db84\n";
    for (const char* name : {"engine_exits", "engine_silent", "engine_wrong_version", "engine_dies_in_grace", "engine_hangs"}) {
        SCOPED_TRACE(name);
        EXPECT_EQ(elfMachine(engine(name)), machine);
        auto r = sb.run({engine(name).string(), "-v"});
        EXPECT_EQ(r.exitCode, 0);
        if (std::string(name) == "engine_wrong_version")
            EXPECT_EQ(r.output, "Docker version 99.0.0, build fake\n");
        else
            EXPECT_EQ(r.output, real);
    }
    EXPECT_EQ(sb.run({"/usr/sbin/dockerd", "-v"}).output, real);
}

TEST_F(Engines, ExitsFailsTheStartJob)
{
    Sandbox sb;
    auto start = swapIn(sb, "engine_exits");
    EXPECT_NE(start.exitCode, 0) << start.output;
    EXPECT_EQ(sb.activeState("docker.service"), "failed");
    EXPECT_FALSE(sb.ping(500ms));
}

TEST_F(Engines, SilentIsActiveButNeverAnswers)
{
    Sandbox sb;
    auto start = swapIn(sb, "engine_silent");
    EXPECT_EQ(start.exitCode, 0) << start.output;
    EXPECT_EQ(sb.activeState("docker.service"), "active");
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(sb.dockerGet("/_ping", 1s)) << "a connection is accepted by the kernel backlog, never answered";
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
    EXPECT_EQ(sb.activeState("docker.service"), "active");
}

TEST_F(Engines, WrongVersionLiesOnlyInDashV)
{
    Sandbox sb;
    auto start = swapIn(sb, "engine_wrong_version");
    EXPECT_EQ(start.exitCode, 0) << start.output;
    ASSERT_TRUE(Sandbox::waitFor([&] { return sb.ping(); }, 30s));
    auto version = sb.dockerGet("/version");
    ASSERT_TRUE(version);
    EXPECT_NE(version->body.find("\"Version\":\"20.10.24+dfsg1\""), std::string::npos) << version->body;
    EXPECT_EQ(sb.run({sb.payloadPath("docker").string(), "-v"}).output, "Docker version 99.0.0, build fake\n");
}

TEST_F(Engines, DiesInGraceAnswersThenDies)
{
    Sandbox sb;
    auto start = swapIn(sb, "engine_dies_in_grace");
    EXPECT_EQ(start.exitCode, 0) << start.output;
    ASSERT_TRUE(Sandbox::waitFor([&] { return sb.ping(); }, 30s)) << "it must answer first";
    auto answered = std::chrono::steady_clock::now();
    ASSERT_TRUE(Sandbox::waitFor([&] { return sb.activeState("docker.service") != "active"; }, 10s))
        << "it must die";
    auto alive = std::chrono::duration<double>(std::chrono::steady_clock::now() - answered).count();
    std::printf("engine_dies_in_grace: died %.3f s after its first answer\n", alive);
    EXPECT_GT(alive, 0.3);
    EXPECT_LT(alive, 5.0);
    EXPECT_EQ(sb.activeState("docker.service"), "failed");
}
