#include "agent_client.hpp"

#include <thread>

#include "dbus/agent_names.hpp"
#include "dbus/sdbus_compat.hpp"

namespace armdock::test {

namespace {
constexpr const char* interfaceName = agentInterfaceName;
}

AgentClient::AgentClient(const std::string& busAddress)
    : connection_(sdbus::createSessionBusConnectionWithAddress(busAddress)),
      proxy_(compat::makeProxy(*connection_, agentBusName, agentObjectPath))
{
}

std::string AgentClient::upgrade(const std::map<std::string, std::string>& files, const std::map<std::string, sdbus::Variant>& options)
{
    std::string tx;
    proxy_->callMethod("Upgrade").onInterface(interfaceName).withArguments(files, options).storeResultsTo(tx);
    return tx;
}

std::string AgentClient::upgradeFds(const std::map<std::string, int>& files, const std::map<std::string, sdbus::Variant>& options)
{
    std::map<std::string, sdbus::UnixFd> descriptors;
    for (const auto& [name, fd] : files)
        descriptors.emplace(name, sdbus::UnixFd(fd));  // a dup, sent and closed with the message
    std::string tx;
    proxy_->callMethod("UpgradeFds").onInterface(interfaceName).withArguments(descriptors, options).storeResultsTo(tx);
    return tx;
}

std::string AgentClient::rollback()
{
    std::string tx;
    proxy_->callMethod("Rollback").onInterface(interfaceName).storeResultsTo(tx);
    return tx;
}

std::string AgentClient::rollbackTo(const std::string& backup)
{
    std::string tx;
    proxy_->callMethod("RollbackTo").onInterface(interfaceName).withArguments(backup).storeResultsTo(tx);
    return tx;
}

std::vector<AgentClient::BackupSetRow> AgentClient::listBackupSets()
{
    std::vector<sdbus::Struct<std::string, std::uint64_t, std::string, std::string, bool, std::string>> reply;
    proxy_->callMethod("ListBackupSets").onInterface(interfaceName).storeResultsTo(reply);
    std::vector<BackupSetRow> out;
    for (const auto& r : reply)
        out.push_back({r.get<0>(), r.get<1>(), r.get<2>(), r.get<3>(), r.get<4>(), r.get<5>()});
    return out;
}

void AgentClient::cancel() { proxy_->callMethod("Cancel").onInterface(interfaceName); }

void AgentClient::reload() { proxy_->callMethod("Reload").onInterface(interfaceName); }

std::vector<std::tuple<std::string, std::uint64_t, std::string>> AgentClient::listBackups()
{
    std::vector<sdbus::Struct<std::string, std::uint64_t, std::string>> reply;
    proxy_->callMethod("ListBackups").onInterface(interfaceName).storeResultsTo(reply);
    std::vector<std::tuple<std::string, std::uint64_t, std::string>> out;
    for (const auto& r : reply)
        out.emplace_back(r.get<0>(), r.get<1>(), r.get<2>());
    return out;
}

std::string AgentClient::property(const std::string& name)
{
    return proxy_->getProperty(name).onInterface(interfaceName).get<std::string>();
}

std::pair<std::uint32_t, std::string> AgentClient::progress()
{
    auto value = proxy_->getProperty("Progress").onInterface(interfaceName).get<sdbus::Struct<std::uint32_t, std::string>>();
    return {value.get<0>(), value.get<1>()};
}

bool AgentClient::healthy() { return proxy_->getProperty("Healthy").onInterface(interfaceName).get<bool>(); }

std::uint32_t AgentClient::engineRestarts() { return proxy_->getProperty("EngineRestarts").onInterface(interfaceName).get<std::uint32_t>(); }

std::uint64_t AgentClient::lastHealthCheck() { return proxy_->getProperty("LastHealthCheck").onInterface(interfaceName).get<std::uint64_t>(); }

std::string AgentClient::waitFinished(const std::string& tx, std::chrono::milliseconds timeout)
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (property("Transaction") == tx) {
            std::string state = property("State");
            if (state == "idle" || state == "failed")
                return property("LastResult");
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
            const std::string state = client.property("State");
            if (state == "idle" || state == "failed")
                return true;
        } catch (const sdbus::Error&) {
            // Between the name and the object, or gone again: ask again.
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

}  // namespace armdock::test
