// The agent inside a test sandbox (tests/support), for the benchmarks: a
// sandbox with the real dockerd, the agent as a unit of the sandbox's systemd
// user manager, and a watcher that timestamps the agent's D-Bus signals.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <condition_variable>
#include <memory>

#include "agent_client.hpp"
#include "bench_common.hpp"
#include "dbus/agent_names.hpp"
#include "sandbox.hpp"

namespace armdock::bench {

using test::AgentClient;
using test::Sandbox;

inline fs::path requireAgentBinary()
{
    fs::path agent = test::agentBinary();
    if (agent.empty() || !fs::exists(agent)) {
        std::cerr << "ARMDOCK_AGENT_BINARY must name the built armdock-agent (bench/run.sh sets it)\n";
        std::exit(2);
    }
    return agent;
}

// The config the benchmarks run the agent with: the sandbox's, at log level
// info (as shipped), with a 1 s grace period so that upgrades end quickly.
inline fs::path writeBenchConfig(Sandbox& sandbox, std::map<std::string, std::string> set = {})
{
    std::map<std::string, std::string> settings{{"agent.log_level", "\"info\""}, {"docker.grace_sec", "1"},
                                                {"docker.health_timeout_sec", "20"}};
    for (const auto& [k, v] : set)
        settings[k] = v;
    return sandbox.writeAgentConfig("", settings);
}

inline void startAgent(Sandbox& sandbox, const std::string& extraServiceLines = "", std::map<std::string, std::string> set = {})
{
    sandbox.agentUnit(requireAgentBinary(), writeBenchConfig(sandbox, std::move(set)), {}, extraServiceLines);
    sandbox.startUnits({"armdock-agent.service"});
    if (!AgentClient::waitForAgent(sandbox.busAddress())) {
        std::cerr << "the agent did not take its bus name\n";
        std::exit(1);
    }
}

// A copy of `from` with a marker appended: another file that runs the same.
inline fs::path variantOf(const fs::path& from, const fs::path& to, const std::string& marker)
{
    fs::remove(to);
    fs::copy_file(from, to);
    std::ofstream(to, std::ios::app | std::ios::binary) << marker;
    fs::permissions(to, fs::perms(0755));
    return to;
}

// Receives PropertiesChanged and Finished on its own connection and thread,
// and notes when each Progress message and each Finished arrived.
class SignalWatcher {
public:
    explicit SignalWatcher(const std::string& busAddress)
        : connection_(sdbus::createSessionBusConnectionWithAddress(busAddress)),
          proxy_(sdbus::createProxy(*connection_, armdock::agentBusName, armdock::agentObjectPath))
    {
        proxy_->uponSignal("PropertiesChanged")
            .onInterface("org.freedesktop.DBus.Properties")
            .call([this](const std::string&, const std::map<std::string, sdbus::Variant>& changed, const std::vector<std::string>&) {
                const auto now = Clock::now();
                auto it = changed.find("Progress");
                if (it == changed.end())
                    return;
                auto value = it->second.get<sdbus::Struct<std::uint32_t, std::string>>();
                std::lock_guard lock(mutex_);
                progress_.push_back({now, value.get<1>()});
            });
        proxy_->uponSignal("Finished")
            .onInterface(armdock::agentInterfaceName)
            .call([this](const std::string& tx, const std::string& result, const std::string& message) {
                std::lock_guard lock(mutex_);
                finished_[tx] = {result, message};
                cv_.notify_all();
            });
        proxy_->finishRegistration();
        connection_->enterEventLoopAsync();
    }
    ~SignalWatcher()
    {
        connection_->leaveEventLoop();
        proxy_.reset();
    }

    // Result and message of transaction tx, or {"timeout", ""}.
    std::pair<std::string, std::string> waitFinished(const std::string& tx, std::chrono::milliseconds timeout)
    {
        std::unique_lock lock(mutex_);
        if (!cv_.wait_for(lock, timeout, [&] { return finished_.count(tx) > 0; }))
            return {"timeout", ""};
        return finished_[tx];
    }

    // When the first Progress message starting with `prefix` arrived after `after`.
    std::optional<Clock::time_point> progressAt(const std::string& prefix, Clock::time_point after)
    {
        std::lock_guard lock(mutex_);
        for (const auto& [at, text] : progress_)
            if (at >= after && text.rfind(prefix, 0) == 0)
                return at;
        return std::nullopt;
    }

private:
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> proxy_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::pair<Clock::time_point, std::string>> progress_;
    std::map<std::string, std::pair<std::string, std::string>> finished_;
};

}  // namespace armdock::bench
