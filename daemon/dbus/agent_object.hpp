// io.armdock.Agent1 at /io/armdock/Agent1: the generated adaptor implemented
// over armdock::Agent. Every method first checks the caller (root, or a
// member of config().agent.allowedGroups) and answers AccessDenied
// otherwise; AgentErrors become their named D-Bus errors and every other
// exception becomes io.armdock.Agent1.Error.Failed here, so nothing escapes
// into sdbus-c++ (which would terminate the daemon). Agent events become
// PropertiesChanged and Finished (the object adds itself as an observer).
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "agent1_adaptor.h"
#include "dbus/agent_names.hpp"
#include "dbus/caller_cache.hpp"
#include "dbus/sdbus_compat.hpp"
#include "core/agent.hpp"
#include "core/agent_status.hpp"
#include "core/upgrade_request.hpp"
#include "dbus/asio_bus.hpp"

namespace armdock {

class AgentObject final : public sdbus::AdaptorInterfaces<io::armdock::Agent1_adaptor>, public AgentObserver {
public:
    // Registers the object and adds itself as the agent's observer.
    // `connection`, `agent` and `driver` must outlive it, and the agent must
    // not notify after it is gone (Agent has no removeObserver yet).
    AgentObject(sdbus::IConnection& connection, Agent& agent, AsioBusDriver& driver);
    ~AgentObject();
    AgentObject(const AgentObject&) = delete;
    AgentObject& operator=(const AgentObject&) = delete;

    void propertiesChanged(const std::vector<std::string>& names) override;
    void finished(const std::string& transaction, TransactionResult result, const std::string& message) override;
    void healthChanged(bool healthy, const std::string& reason) override;
    // Every reload (over D-Bus or SIGHUP) re-resolves allowed_groups: the one path.
    void reloaded() override;

private:
    void refreshAllowedGroups();
    void Upgrade(sdbus::Result<std::string>&& result, std::map<std::string, std::string> files,
                 std::map<std::string, sdbus::Variant> options) override;
    void UpgradeFds(sdbus::Result<std::string>&& result, std::map<std::string, sdbus::UnixFd> files,
                    std::map<std::string, sdbus::Variant> options) override;
    void Rollback(sdbus::Result<std::string>&& result) override;
    void Release(sdbus::Result<std::string>&& result) override;
    void RollbackTo(sdbus::Result<std::string>&& result, std::string backup) override;
    void Cancel(sdbus::Result<>&& result) override;
    void ListBackups(sdbus::Result<std::vector<sdbus::Struct<std::string, uint64_t, std::string>>>&& result) override;
    void ListBackupSets(
        sdbus::Result<std::vector<sdbus::Struct<std::string, uint64_t, std::string, std::string, bool, std::string>>>&& result) override;
    void ListPayloads(sdbus::Result<std::vector<sdbus::Struct<std::string, std::string, bool, std::string, std::string>>>&& result) override;
    using PackageRow = sdbus::Struct<std::string, std::string, std::string, std::string, std::string, bool, std::vector<std::string>>;
    void ListPayloadPackages(sdbus::Result<std::vector<PackageRow>, std::vector<std::string>>&& result) override;
    void Reload(sdbus::Result<>&& result) override;

    std::string State() override;
    sdbus::Struct<uint32_t, std::string> Progress() override;
    std::string Transaction() override;
    std::string CurrentVersion() override;
    std::string LastResult() override;
    std::string LastError() override;
    bool Healthy() override;
    uint64_t LastHealthCheck() override;
    uint32_t EngineRestarts() override;

    template <typename... Results, typename Body>
    void serve(const sdbus::Result<Results...>& result, const char* method, Body body);
    // The error reply for `error`: its named error for an AgentError, Failed otherwise.
    template <typename... Results>
    void replyError(const sdbus::Result<Results...>& result, const char* method, std::exception_ptr error);
    void requireCaller();

    Agent& agent_;
    AsioBusDriver& driver_;
    std::vector<gid_t> allowedGids_;
    CallerCache<compat::CallerCredentials> callers_;  // no bus round trip per call
};

// a{sv} options as the core takes them: b, u and s are kept, any other type
// becomes UnsupportedOptionType with its signature.
std::map<std::string, OptionValue> toOptionValues(const std::map<std::string, sdbus::Variant>& options);

}  // namespace armdock
