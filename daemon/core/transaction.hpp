// One transaction, step by step (docs/design.md, "The transaction"): stage
// while Docker runs, back up, stop, swap, start, check, then commit or roll
// back by itself. Also the recovery of a journal that a crash left behind.
// Talks to systemd and Docker only through UnitControl and EngineApi, so it
// is tested with fakes and no bus.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "async.hpp"
#include "backup_store.hpp"
#include "config.hpp"
#include "engine_api.hpp"
#include "file_attributes.hpp"
#include "health_check.hpp"
#include "hooks.hpp"
#include "dpkg_diversions.hpp"
#include "journal.hpp"
#include "payload_signature.hpp"
#include "source_verifier.hpp"
#include "unit_control.hpp"

namespace armdock {

// Learns the version an engine binary reports (runs it with its version arguments).
using VersionProbe = std::function<std::string(const std::filesystem::path& binary, const std::vector<std::string>& args)>;

struct PlannedPayload {
    const PayloadSpec* spec = nullptr;
    OpenedSource source;               // verified, opened once (not for a link or a removal)
    std::string expectedSha256;        // "" when none was given
    std::optional<AcceptedSignature> signature;  // checked but for the bytes, which staging checks
    bool removeTarget = false;         // rollback to a set where this payload was absent
    std::string linkTarget;            // rollback to a set where this payload was a symbolic link
};

struct TransactionPlan {
    std::string id;
    TransactionKind kind = TransactionKind::Upgrade;
    std::vector<PlannedPayload> payloads;
    bool dryRun = false;
    std::chrono::milliseconds healthTimeout{60000};
    std::string knownVersion;          // for a rollback: the version the backup set recorded
    std::string backupId;              // for a rollback: the set it installs
    bool reinstall = false;            // a rollback to the set that is installed: restart and check it
    std::vector<std::filesystem::path> dropins;  // the drop-in files it applies (journalled)
    bool release = false;  // armdockctl release: installs the packaged files (TARGET.distrib), then undoes the agent's diversions
};

struct TransactionOutcome {
    TransactionOutcome(TransactionResult result_ = TransactionResult::None, std::string message_ = {}, std::string version_ = {})
        : result(result_), message(std::move(message_)), version(std::move(version_))
    {
    }
    TransactionResult result;
    std::string message;  // for LastError (empty on success) or a success note
    std::string version;  // the engine version now running, "" when unknown
    std::string damagedBackup;  // a rollback refused because this backup set's files are damaged
    bool journalKept = false;   // the set on disk is not whole: the journal stays for the next recovery
};

// State, percent, message.
using ProgressReporter = std::function<void(AgentState, unsigned, const std::string&)>;

class TransactionRunner {
public:
    struct Services {
        boost::asio::thread_pool& pool;
        UnitControl& units;
        EngineApi& engine;
        BackupStore& backups;
        TransactionJournal& journal;
        VersionProbe probeVersion;
        ProgressReporter report;
        std::function<bool()> cancelRequested;
    };

    TransactionRunner(const Config& config, Services services);

    Task<TransactionOutcome> run(TransactionPlan plan);
    // Finishes what the journal says was interrupted: back to the set that
    // was installed before, Docker started and checked.
    Task<TransactionOutcome> recover(JournalContents journal);

private:
    struct Attempt;  // one run(): its plan, what it staged, the sets on each side
    struct RollbackRequest;
    // The steps of run(), in order.
    Task<void> checkPackageOwners(Attempt& a);
    // dpkg_owned = "divert": the planned diversions and holds, recorded, then
    // made (core/dpkg_diversions.hpp); "" or why they could not be (undone then).
    Task<std::string> divertPackaged(Attempt& a);
    // At the end of every transaction: the agent's diversions kept where its
    // own file is installed, undone where the packaged one is back (core/dpkg_diversions.hpp).
    Task<void> reconcileDiversions(const std::string& tx);
    Task<void> stage(Attempt& a);
    FileAttributes attributesToStage(Attempt& a, const PlannedPayload& p);
    Task<void> describeNewSet(Attempt& a);
    std::string probeNewFile(const PayloadSpec& spec, const std::filesystem::path& file) const;
    Task<void> checkLiveRestore(Attempt& a);
    Task<void> planSocketHold(Attempt& a);
    Task<void> backUpInstalled(Attempt& a);
    Task<void> stopForSwap(Attempt& a);
    Task<void> swapAndStart(Attempt& a);
    Task<void> restartHeld(Attempt& a);
    Task<void> check(Attempt& a);
    Task<TransactionOutcome> commit(Attempt& a);
    Task<TransactionOutcome> restartUnchanged(Attempt& a);
    Task<TransactionOutcome> abandon(Attempt& a, TransactionOutcome outcome);
    Task<TransactionOutcome> rollBackAttempt(Attempt& a, RollbackRequest request);
    // The [hooks] (core/hooks.hpp): "" when before_stop passed (or there is none), else why not.
    Task<std::string> beforeStopHook(Attempt& a);
    HookContext hookContext(const Attempt& a) const;
    // From the stop to the end: commit, restart unchanged, or roll back.
    Task<TransactionOutcome> outage(Attempt& a);
    // The after hook of a transaction that stopped the engine; its failure is added to the outcome's message.
    Task<TransactionOutcome> afterHook(Attempt& a, TransactionOutcome outcome);

    // The units a change restarts (Config::unitsOf), in one job batch each way; none: nothing to do.
    Task<void> stopUnits(const std::vector<std::string>& units);
    Task<void> startUnits(const std::vector<std::string>& units);
    Task<void> unitBatch(const std::vector<std::string>& units, bool start);
    Task<void> checkInstalledSet(const BackupSet& set, std::vector<ContainerSummary> containersBack);
    // What only a new set must prove, besides answering.
    struct NewSetProof {
        std::vector<const PlannedPayload*> changed;  // their services run their new files
        std::vector<KeptContainer> keptRunning;      // live-restore: still running in the same process
        std::vector<ExpectedComponent> components;   // what /version's Components must report
    };
    // `proof`: nullptr for a restored set.
    Task<void> checkEngine(const std::string& expectedVersion, const std::optional<std::string>& expectedInitSha1,
                           std::chrono::milliseconds timeout, std::vector<ContainerSummary> containersBack, const NewSetProof* proof);
    Task<std::vector<ContainerSummary>> containersToBringBack();
    Task<std::vector<KeptContainer>> containersToKeepRunning();
    // Puts each named payload of `set` back at its target; every file renamed
    // over a target is first checked against the SHA-256 its manifest
    // records. `useStaged`: the restore copies staged before the stop may be
    // used (checked too); a recovery copies afresh from the backup.
    Task<void> restoreSet(const BackupSet& set, const std::vector<std::string>& names, const std::string& transaction, bool useStaged);
    Task<TransactionOutcome> rollBack(RollbackRequest request);
    Task<std::string> keepFailedSet(const RollbackRequest& request);
    std::string adviceAfterFailedRollback(const BackupSet& set) const;
    void removeLeftovers(const JournalBegin& begin);
    JournalBegin allPayloads(const std::string& transaction) const;
    // The journal and file clean-up fsync: they run off the loop, awaited, so
    // the order still holds (the journal line is on disk before its step).
    Task<void> journalStep(JournalStepKind step);
    Task<void> removeLeftoversAndJournal(const JournalBegin& begin);
    void report(AgentState state, unsigned percent, const std::string& message);

    const Config& config_;
    Services s_;
    DiversionRecord diversions_;
};

}  // namespace armdock
