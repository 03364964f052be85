// An agent running as a unit of the sandbox's systemd user manager, managing
// the sandbox's real dockerd, and a D-Bus client for it.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>

#include "agent_client.hpp"
#include "core/sha_digest.hpp"
#include "sandbox.hpp"

namespace armdock::test {

namespace fs = std::filesystem;

inline std::string sha256Of(const fs::path& file)
{
    return fs::exists(file) ? sha256OfFile(file) : std::string("missing");
}

class AgentSandboxTest : public ::testing::Test {
protected:
    // Starts the sandbox (dockerd running) and the agent with config tweaks
    // ("docker.grace_sec" -> raw TOML value).
    void startAll(const std::map<std::string, std::string>& set = {}, const std::string& extraToml = "")
    {
        sandbox = std::make_unique<Sandbox>(sandboxOptions);
        std::map<std::string, std::string> settings{{"docker.health_timeout_sec", "10"}, {"docker.grace_sec", "2"}};
        for (auto [k, v] : set) {
            // @ENGINE@ stands for the engine payload's path, @ROOT@ for the payload root, known only once the sandbox exists.
            if (auto at = v.find("@ENGINE@"); at != std::string::npos)
                v.replace(at, 8, sandbox->payloadPath("docker").string());
            if (auto at = v.find("@ROOT@"); at != std::string::npos)
                v.replace(at, 6, sandbox->root().string());
            settings[k] = v;
        }
        // @ROOT@ in extraToml stands for the sandbox's payload root.
        std::string extra = extraToml;
        for (auto at = extra.find("@ROOT@"); at != std::string::npos; at = extra.find("@ROOT@"))
            extra.replace(at, 6, sandbox->root().string());
        configFile = sandbox->writeAgentConfig(extra, settings);
        sandbox->agentUnit(agentBinary(), configFile);
        sandbox->startUnits({"armdock-agent.service"});
        ASSERT_TRUE(AgentClient::waitForAgent(sandbox->busAddress())) << agentLog();
        client = std::make_unique<AgentClient>(sandbox->busAddress());
        oldEngineSha = sha256Of(sandbox->payloadPath("docker"));
    }

    // A copy of the sandbox's dockerd with bytes appended: a different file
    // that still runs and reports the same version.
    fs::path newGoodEngine(const std::string& marker = "armdock-test-v2")
    {
        fs::path file = sandbox->dir() / ("src-" + marker);
        fs::copy_file(sandbox->payloadPath("docker"), file);
        std::ofstream(file, std::ios::app | std::ios::binary) << marker;
        fs::permissions(file, fs::perms(0755));
        return file;
    }

    fs::path testEngine(const std::string& name)
    {
        fs::path file = sandbox->dir() / ("src-" + name);
        installExecutable(enginesDir() / name, file);
        return file;
    }

    std::string agentLog() const { return sandbox ? (fs::exists(sandbox->agentLog()) ? readFile(sandbox->agentLog()) : "") : ""; }

    void TearDown() override
    {
        client.reset();
        if (HasFailure() && sandbox)
            std::cerr << "---- agent log ----\n" << agentLog() << "\n-------------------\n";
        sandbox.reset();
    }

    SandboxOptions sandboxOptions;  // read by startAll
    std::unique_ptr<Sandbox> sandbox;
    std::unique_ptr<AgentClient> client;
    fs::path configFile;
    std::string oldEngineSha;
};

}  // namespace armdock::test
