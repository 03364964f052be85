// The agent: one transaction at a time, its status, backups, recovery at
// start, reload and drop-ins. No D-Bus here: the glue in daemon/dbus/ calls
// these methods and forwards AgentObserver events to the bus.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent_status.hpp"
#include "async.hpp"
#include "config.hpp"
#include "engine_api.hpp"
#include "payload_packages.hpp"
#include "unit_control.hpp"
#include "transaction.hpp"
#include "unique_fd.hpp"
#include "upgrade_request.hpp"

namespace armdock {

struct BackupInfo {
    std::string id;
    std::uint64_t createdUsec = 0;
    std::string version;
    std::string health;      // healthy, failed, unknown, damaged
    bool installed = false;  // the set on disk now
    std::string note;        // why Rollback() would not pick it, "" when it would
};

class Agent {
public:
    Agent(boost::asio::io_context& io, boost::asio::thread_pool& pool, UnitControl& units, EngineApi& engine, Config config);
    ~Agent();

    // Before the bus name is taken, nothing long: reads the last result and
    // the journal of a transaction a crash interrupted (then the agent is busy
    // with its recovery: State rolling-back, Transaction its id) and, when
    // nothing was interrupted, asks the engine its version (1 s at most).
    Task<void> startUp();
    // After READY=1 and the bus name: finishes the interrupted transaction as
    // one clients can watch (Finished at its end). Nothing when none was.
    Task<void> recoverInterrupted();
    // After READY=1: describes the installed set (hashes every payload),
    // starts the health monitor and learns CurrentVersion from the engine.
    Task<void> warmUp();

    // Each throws AgentError (Busy, InvalidArgument, PayloadRejected, NoBackup,
    // Failed) before anything changed; otherwise returns the transaction id
    // and the rest runs on the loop.
    std::string upgrade(const std::map<std::string, std::string>& files, const std::map<std::string, OptionValue>& options);
    // The same with sources the client opened (UpgradeFds): payload name ->
    // descriptor, each verified as a path's file would be.
    std::string upgradeFds(std::map<std::string, UniqueFd> files, const std::map<std::string, OptionValue>& options);
    std::string rollback();
    // dpkg_owned = "divert": installs the packaged files again (each diverted
    // target's TARGET.distrib) as an upgrade, then removes the agent's
    // diversions and holds. InvalidArgument when it made none.
    std::string release();
    // Installs backup set `id` through the same path as rollback(); the set
    // that is installed is started again and checked. NoBackup when there is
    // no such set, PayloadRejected when it lacks a configured payload.
    std::string rollbackTo(const std::string& id);
    void cancel();  // AgentError(Failed) when nothing runs
    std::vector<BackupInfo> listBackups() const;
    // What is at each configured payload's target now (hashed off the loop):
    // `done` gets the members or the error, on the loop.
    Task<std::vector<SetMember>> installedPayloads();
    void installedPayloads(std::function<void(std::vector<SetMember> members, std::exception_ptr error)> done);

    // The package manager beside each payload (core/payload_packages.hpp), read off the loop.
    Task<PackageReport> payloadPackages();
    void payloadPackages(std::function<void(PackageReport report, std::exception_ptr error)> done);

    // Re-reads the config file (a broken one is refused, the old one kept:
    // AgentError(InvalidArgument) with file:line:column) and upgrades from the
    // drop-in folder if anything waits there. Returns the transaction id or "".
    // Runs on the loop; the file work off it. Started with the callback form
    // by the bus glue and SIGHUP: `done` gets the transaction id ("" when
    // nothing waited) or the error, on the loop.
    Task<std::string> reload();
    void reload(std::function<void(const std::string& transaction, std::exception_ptr error)> done);

    const AgentStatus& status() const;
    const Config& config() const;
    // Observers are told of every status change and every Finished, on the loop.
    void addObserver(AgentObserver* observer);
    bool busy() const;
    // The service is stopping (SIGTERM): every call that would start a
    // transaction answers Busy from now on, so the drain ends.
    void refuseNewTransactions();
    // Tests replace how an engine binary's version is learned.
    void setVersionProbe(VersionProbe probe);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace armdock
