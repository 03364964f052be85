// A test client of io.armdock.Agent1 on a sandbox's bus: the proxy generated
// from the interface XML, so tests compile against the one definition and see
// the real D-Bus error names. Synchronous calls; waiting for the end of a
// transaction polls the properties every 10 ms.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace armdock::test {

class GeneratedAgentProxy;  // the generated io.armdock.Agent1 proxy, signals unsubscribed

class AgentClient {
public:
    explicit AgentClient(const std::string& busAddress);
    ~AgentClient();

    std::string upgrade(const std::map<std::string, std::string>& files, const std::map<std::string, sdbus::Variant>& options = {});
    // UpgradeFds with these open descriptors (payload name -> fd; the caller keeps its own).
    std::string upgradeFds(const std::map<std::string, int>& files, const std::map<std::string, sdbus::Variant>& options = {});
    std::string rollback();
    std::string rollbackTo(const std::string& backup);
    struct BackupSetRow {
        std::string id;
        std::uint64_t createdUsec = 0;
        std::string version, health;
        bool installed = false;
        std::string note;
    };
    std::vector<BackupSetRow> listBackupSets();
    void cancel();
    void reload();
    std::vector<std::tuple<std::string, std::uint64_t, std::string>> listBackups();

    std::string property(const std::string& name);  // State, Transaction, CurrentVersion, LastResult, LastError
    std::pair<std::uint32_t, std::string> progress();
    bool healthy();
    std::uint32_t engineRestarts();
    std::uint64_t lastHealthCheck();

    // Waits until Transaction is `tx` and State is idle or failed; returns LastResult
    // ("timeout" when it did not end in time).
    std::string waitFinished(const std::string& tx, std::chrono::milliseconds timeout = std::chrono::seconds(120));
    // Waits until the agent owns its name on the bus.
    static bool waitForAgent(const std::string& busAddress, std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Waits until the agent owns its name and runs no transaction (State idle
    // or failed): a start after a crash takes the name first, then recovers.
    static bool waitForIdleAgent(const std::string& busAddress, std::chrono::milliseconds timeout = std::chrono::seconds(120));

private:
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<GeneratedAgentProxy> proxy_;
};

}  // namespace armdock::test
