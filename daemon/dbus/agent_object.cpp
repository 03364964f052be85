#include "dbus/agent_object.hpp"

#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/caller_access.hpp"
#include "core/config.hpp"
#include "core/errors.hpp"
#include "dbus/sdbus_compat.hpp"

namespace armdock {

std::map<std::string, OptionValue> toOptionValues(const std::map<std::string, sdbus::Variant>& options)
{
    std::map<std::string, OptionValue> values;
    for (const auto& [key, variant] : options) {
        const std::string signature = variant.peekValueType();
        if (signature == "b")
            values.emplace(key, variant.get<bool>());
        else if (signature == "u")
            values.emplace(key, variant.get<std::uint32_t>());
        else if (signature == "s")
            values.emplace(key, variant.get<std::string>());
        else
            values.emplace(key, UnsupportedOptionType{signature});
    }
    return values;
}

static_assert(std::string_view(agentBusName) == io::armdock::Agent1_adaptor::INTERFACE_NAME,
              "the bus name is the interface's name, as the XML spells it");

AgentObject::AgentObject(sdbus::IConnection& connection, Agent& agent, AsioBusDriver& driver)
    : AdaptorInterfaces(connection, compat::ObjectPath{agentObjectPath}), agent_(agent), driver_(driver)
{
    refreshAllowedGroups();
    registerAdaptor();
    agent_.addObserver(this);
}

AgentObject::~AgentObject()
{
    unregisterAdaptor();
}

void AgentObject::refreshAllowedGroups()
{
    const auto& names = agent_.config().agent.allowedGroups;
    try {
        allowedGids_ = resolveAllowedGroups(names);
    } catch (const std::exception& e) {
        allowedGids_.clear();
        spdlog::error("allowed_groups: {}; only root may call methods until the config is fixed", e.what());
    }
}

void AgentObject::reloaded()
{
    refreshAllowedGroups();
}

void AgentObject::requireCaller()
{
    compat::CallerCredentials caller;
    try {
        const std::string sender = compat::currentSender(getObject());
        if (const auto* known = callers_.find(sender)) {
            caller = *known;
        } else {
            caller = compat::currentCaller(getObject());
            callers_.remember(sender, caller);
        }
    } catch (const std::exception& e) {
        throw AgentError(ErrorKind::AccessDenied, fmt::format("could not learn who is calling: {}", e.what()));
    }
    if (callerMayCall(caller.uid, caller.gid, caller.supplementaryGids, allowedGids_))
        return;
    throw AgentError(ErrorKind::AccessDenied,
                     fmt::format("uid {} may not call io.armdock.Agent1 methods: only root and members of "
                                 "allowed_groups [{}] may (see {})",
                                 caller.uid, fmt::join(agent_.config().agent.allowedGroups, ", "),
                                 agent_.config().sourceFile.empty() ? "/etc/armdock/agent.toml"
                                                                    : agent_.config().sourceFile.string()));
}

// The one boundary where exceptions stop: an AgentError becomes its named
// error, anything else io.armdock.Agent1.Error.Failed.
template <typename... Results, typename Body>
void AgentObject::serve(const sdbus::Result<Results...>& result, const char* method, Body body)
{
    try {
        requireCaller();
        body();
    } catch (...) {
        replyError(result, method, std::current_exception());
    }
}

template <typename... Results>
void AgentObject::replyError(const sdbus::Result<Results...>& result, const char* method, std::exception_ptr error)
{
    try {
        std::rethrow_exception(error);
    } catch (const AgentError& e) {
        spdlog::info("{} refused: {}", method, e.what());
        result.returnError(compat::makeError(dbusErrorName(e.kind()), e.what()));
    } catch (const std::exception& e) {
        spdlog::error("{} failed: {}", method, e.what());
        result.returnError(compat::makeError(dbusErrorName(ErrorKind::Failed), fmt::format("{} failed: {}", method, e.what())));
    } catch (...) {
        spdlog::error("{} failed with an unknown exception", method);
        result.returnError(compat::makeError(dbusErrorName(ErrorKind::Failed), fmt::format("{} failed", method)));
    }
}

void AgentObject::Upgrade(sdbus::Result<std::string>&& result, std::map<std::string, std::string> files,
                          std::map<std::string, sdbus::Variant> options)
{
    serve(result, "Upgrade", [&] { result.returnResults(agent_.upgrade(files, toOptionValues(options))); });
}

void AgentObject::UpgradeFds(sdbus::Result<std::string>&& result, std::map<std::string, sdbus::UnixFd> files,
                             std::map<std::string, sdbus::Variant> options)
{
    serve(result, "UpgradeFds", [&] {
        std::map<std::string, UniqueFd> descriptors;
        for (auto& [name, fd] : files)
            descriptors.emplace(name, UniqueFd(fd.release()));
        result.returnResults(agent_.upgradeFds(std::move(descriptors), toOptionValues(options)));
    });
}

void AgentObject::Release(sdbus::Result<std::string>&& result)
{
    serve(result, "Release", [&] { result.returnResults(agent_.release()); });
}

void AgentObject::Rollback(sdbus::Result<std::string>&& result)
{
    serve(result, "Rollback", [&] { result.returnResults(agent_.rollback()); });
}

void AgentObject::RollbackTo(sdbus::Result<std::string>&& result, std::string backup)
{
    serve(result, "RollbackTo", [&] { result.returnResults(agent_.rollbackTo(backup)); });
}

void AgentObject::Cancel(sdbus::Result<>&& result)
{
    serve(result, "Cancel", [&] {
        agent_.cancel();
        result.returnResults();
    });
}

void AgentObject::ListBackups(sdbus::Result<std::vector<sdbus::Struct<std::string, uint64_t, std::string>>>&& result)
{
    serve(result, "ListBackups", [&] {
        std::vector<sdbus::Struct<std::string, uint64_t, std::string>> backups;
        for (const auto& backup : agent_.listBackups())
            backups.emplace_back(backup.id, backup.createdUsec, backup.version);
        result.returnResults(backups);
    });
}

void AgentObject::ListBackupSets(
    sdbus::Result<std::vector<sdbus::Struct<std::string, uint64_t, std::string, std::string, bool, std::string>>>&& result)
{
    serve(result, "ListBackupSets", [&] {
        std::vector<sdbus::Struct<std::string, uint64_t, std::string, std::string, bool, std::string>> sets;
        for (const auto& b : agent_.listBackups())
            sets.emplace_back(b.id, b.createdUsec, b.version, b.health, b.installed, b.note);
        result.returnResults(sets);
    });
}

// Answered when every target is hashed (off the loop).
void AgentObject::ListPayloads(sdbus::Result<std::vector<sdbus::Struct<std::string, std::string, bool, std::string, std::string>>>&& result)
{
    using Reply = sdbus::Result<std::vector<sdbus::Struct<std::string, std::string, bool, std::string, std::string>>>;
    serve(result, "ListPayloads", [&] {
        auto pending = std::make_shared<Reply>(std::move(result));
        agent_.installedPayloads([this, pending](std::vector<SetMember> members, std::exception_ptr error) {
            if (error) {
                replyError(*pending, "ListPayloads", error);
            } else {
                std::vector<sdbus::Struct<std::string, std::string, bool, std::string, std::string>> rows;
                for (const auto& m : members)
                    rows.emplace_back(m.name, m.target.string(), m.present, m.sha256, m.linkTarget);
                pending->returnResults(rows);
            }
            driver_.kick();  // a reply sent outside a bus callback
        });
    });
}

void AgentObject::ListPayloadPackages(sdbus::Result<std::vector<PackageRow>, std::vector<std::string>>&& result)
{
    using Reply = sdbus::Result<std::vector<PackageRow>, std::vector<std::string>>;
    serve(result, "ListPayloadPackages", [&] {
        auto pending = std::make_shared<Reply>(std::move(result));
        agent_.payloadPackages([this, pending](PackageReport report, std::exception_ptr error) {
            if (error) {
                replyError(*pending, "ListPayloadPackages", error);
            } else {
                std::vector<PackageRow> rows;
                for (const auto& p : report.payloads) {
                    std::string packages;
                    for (const auto& name : p.owner.packages)
                        packages += (packages.empty() ? "" : ",") + name;
                    rows.emplace_back(p.payload, p.target.string(), packages, p.owner.divertedTo, p.owner.divertedBy, p.held, p.warnings);
                }
                pending->returnResults(rows, report.hostWarnings);
            }
            driver_.kick();  // a reply sent outside a bus callback
        });
    });
}

// Answered when the reload is done (its file work runs off the loop).
void AgentObject::Reload(sdbus::Result<>&& result)
{
    serve(result, "Reload", [&] {
        auto pending = std::make_shared<sdbus::Result<>>(std::move(result));
        agent_.reload([this, pending](const std::string& transaction, std::exception_ptr error) {
            if (error) {
                replyError(*pending, "Reload", error);
            } else {
                if (!transaction.empty())
                    spdlog::info("Reload started transaction {}", transaction);
                pending->returnResults();
            }
            driver_.kick();  // a reply sent outside a bus callback
        });
    });
}

std::string AgentObject::State()
{
    return std::string(toString(agent_.status().state));
}

sdbus::Struct<uint32_t, std::string> AgentObject::Progress()
{
    const auto& status = agent_.status();
    return sdbus::Struct<uint32_t, std::string>(status.percent, status.message);
}

std::string AgentObject::Transaction()
{
    return agent_.status().transaction;
}

std::string AgentObject::CurrentVersion()
{
    return agent_.status().currentVersion;
}

std::string AgentObject::LastResult()
{
    return std::string(toString(agent_.status().lastResult));
}

std::string AgentObject::LastError()
{
    return agent_.status().lastError;
}

bool AgentObject::Healthy()
{
    return agent_.status().healthy;
}

uint64_t AgentObject::LastHealthCheck()
{
    return agent_.status().lastHealthCheckUsec;
}

uint32_t AgentObject::EngineRestarts()
{
    return agent_.status().engineRestarts;
}

void AgentObject::propertiesChanged(const std::vector<std::string>& names)
{
    try {
        const std::vector<compat::PropertyName> properties(names.begin(), names.end());
        getObject().emitPropertiesChangedSignal(compat::InterfaceName{INTERFACE_NAME}, properties);
        driver_.kick();
    } catch (const std::exception& e) {
        spdlog::warn("could not emit PropertiesChanged: {}", e.what());
    }
}

void AgentObject::finished(const std::string& transaction, TransactionResult result, const std::string& message)
{
    try {
        emitFinished(transaction, std::string(toString(result)), message);
        driver_.kick();
    } catch (const std::exception& e) {
        spdlog::warn("could not emit Finished: {}", e.what());
    }
}

void AgentObject::healthChanged(bool healthy, const std::string& reason)
{
    try {
        emitHealthChanged(healthy, reason);
        driver_.kick();
    } catch (const std::exception& e) {
        spdlog::warn("could not emit HealthChanged: {}", e.what());
    }
}

}  // namespace armdock
