#include "agent_client.hpp"

#include <stdexcept>
#include <thread>

#include "agent1_proxy.h"
#include "core/vocabulary.hpp"
#include "dbus/agent_names.hpp"
#include "dbus/sdbus_compat.hpp"

namespace armdock::test {

// The signal handlers stay unregistered (no registerProxy): the client polls,
// and a connection nobody reads must not collect signals.
class GeneratedAgentProxy final : public sdbus::ProxyInterfaces<io::armdock::Agent1_proxy> {
public:
    explicit GeneratedAgentProxy(sdbus::IConnection& connection)
        : ProxyInterfaces(connection, compat::ServiceName{agentBusName}, compat::ObjectPath{agentObjectPath})
    {
    }

private:
    void onFinished(const std::string&, const std::string&, const std::string&) override {}
    void onHealthChanged(const bool&, const std::string&) override {}
};

namespace {

// Idle or failed: no transaction runs.
bool settled(const std::string& state)
{
    const auto known = fromString<AgentState>(state);
    return known == AgentState::Idle || known == AgentState::Failed;
}

}  // namespace

AgentClient::AgentClient(const std::string& busAddress)
    : connection_(sdbus::createSessionBusConnectionWithAddress(busAddress)), proxy_(std::make_unique<GeneratedAgentProxy>(*connection_))
{
}

AgentClient::~AgentClient() = default;

std::string AgentClient::upgrade(const std::map<std::string, std::string>& files, const std::map<std::string, sdbus::Variant>& options)
{
    return proxy_->Upgrade(files, options);
}

std::string AgentClient::upgradeFds(const std::map<std::string, int>& files, const std::map<std::string, sdbus::Variant>& options)
{
    std::map<std::string, sdbus::UnixFd> descriptors;
    for (const auto& [name, fd] : files)
        descriptors.emplace(name, sdbus::UnixFd(fd));  // a dup, sent and closed with the message
    return proxy_->UpgradeFds(descriptors, options);
}

std::string AgentClient::rollback() { return proxy_->Rollback(); }

std::string AgentClient::rollbackTo(const std::string& backup) { return proxy_->RollbackTo(backup); }

std::vector<AgentClient::BackupSetRow> AgentClient::listBackupSets()
{
    std::vector<BackupSetRow> out;
    for (const auto& r : proxy_->ListBackupSets())
        out.push_back({r.get<0>(), r.get<1>(), r.get<2>(), r.get<3>(), r.get<4>(), r.get<5>()});
    return out;
}

void AgentClient::cancel() { proxy_->Cancel(); }

void AgentClient::reload() { proxy_->Reload(); }

std::vector<std::tuple<std::string, std::uint64_t, std::string>> AgentClient::listBackups()
{
    std::vector<std::tuple<std::string, std::uint64_t, std::string>> out;
    for (const auto& r : proxy_->ListBackups())
        out.emplace_back(r.get<0>(), r.get<1>(), r.get<2>());
    return out;
}

std::string AgentClient::property(const std::string& name)
{
    using Getter = std::string (io::armdock::Agent1_proxy::*)();
    static const std::map<std::string, Getter> getters{
        {"State", &io::armdock::Agent1_proxy::State},
        {"Transaction", &io::armdock::Agent1_proxy::Transaction},
        {"CurrentVersion", &io::armdock::Agent1_proxy::CurrentVersion},
        {"LastResult", &io::armdock::Agent1_proxy::LastResult},
        {"LastError", &io::armdock::Agent1_proxy::LastError},
    };
    const auto getter = getters.find(name);
    if (getter == getters.end())
        throw std::invalid_argument("AgentClient::property: " + name + " is not a string property of io.armdock.Agent1");
    return (proxy_.get()->*getter->second)();
}

std::pair<std::uint32_t, std::string> AgentClient::progress()
{
    const auto value = proxy_->Progress();
    return {value.get<0>(), value.get<1>()};
}

bool AgentClient::healthy() { return proxy_->Healthy(); }

std::uint32_t AgentClient::engineRestarts() { return proxy_->EngineRestarts(); }

std::uint64_t AgentClient::lastHealthCheck() { return proxy_->LastHealthCheck(); }

std::string AgentClient::waitFinished(const std::string& tx, std::chrono::milliseconds timeout)
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (property("Transaction") == tx) {
            if (settled(proxy_->State()))
                return proxy_->LastResult();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return "timeout";
}

bool AgentClient::waitForAgent(const std::string& busAddress, std::chrono::milliseconds timeout)
{
    auto connection = sdbus::createSessionBusConnectionWithAddress(busAddress);
    auto dbus = compat::makeProxy(*connection, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        bool has = false;
        dbus->callMethod("NameHasOwner").onInterface("org.freedesktop.DBus").withArguments(std::string(agentBusName)).storeResultsTo(has);
        if (has)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

bool AgentClient::waitForIdleAgent(const std::string& busAddress, std::chrono::milliseconds timeout)
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (!waitForAgent(busAddress, timeout))
        return false;
    AgentClient client(busAddress);
    while (std::chrono::steady_clock::now() < deadline) {
        try {
            if (settled(client.property("State")))
                return true;
        } catch (const sdbus::Error&) {
            // Between the name and the object, or gone again: ask again.
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

}  // namespace armdock::test
