#include "transaction.hpp"

// GCC 12 inlines Boost.Asio 1.74's coroutine frame allocator (the frame's
// class operator new hands out a recycled block or a global ::operator new
// one; its class operator delete takes it back) and then reports the class
// delete as "mismatched" with the global new it can see inside: a false
// positive, on the largest coroutine of this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>
#include <cstring>
#include <system_error>

#include "durable_fs.hpp"
#include "engine_version.hpp"
#include "errors.hpp"
#include "fault_point.hpp"
#include "file_attributes.hpp"
#include "health_check.hpp"
#include "held_restart.hpp"
#include "logging.hpp"
#include "package_owner.hpp"
#include "process_start.hpp"
#include "sha_digest.hpp"
#include "staging.hpp"

namespace armdock {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// Hidden names beside each target, all recognised by isStagedFileName():
//   <tx>          the new file, before the swap
//   <tx>-restore  the backed-up file, staged before the stop so a rollback is only renames
//   <tx>-copying  a copy from the backup being made; renamed once complete and checked
//   <tx>-kept     a hard link to the new file while a rollback runs (kept if the rollback fails)
fs::path restorePathFor(const fs::path& target, const std::string& tx) { return stagedPathFor(target, tx + "-restore"); }
fs::path copyingPathFor(const fs::path& target, const std::string& tx) { return stagedPathFor(target, tx + "-copying"); }
fs::path keptPathFor(const fs::path& target, const std::string& tx) { return stagedPathFor(target, tx + "-kept"); }

std::string describeException(std::exception_ptr e)
{
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {  // HealthCheckFailed and UnitJobFailed name the check or unit in what()
        return x.what();
    } catch (...) {
        return "unknown error";
    }
}

std::string versionNote(const BackupSet& set) { return set.version.empty() ? std::string() : " (" + set.version + ")"; }

// The file a link at `target` with text `text` names.
fs::path linkReferent(const fs::path& target, const std::string& text)
{
    const fs::path named(text);
    return named.is_absolute() ? named : target.parent_path() / named;
}

// How a backup file differs from the owner, mode and extended attributes its
// manifest records ("" when it does not, or when a set of an earlier
// version recorded none): such a set is damaged, like one with a wrong hash.
std::string keptAttributesDamage(const SetMember& member, const FileAttributes& kept, const fs::path& backupFile)
{
    if (!member.attributes)
        return {};
    const std::string difference = attributeDifference(*member.attributes, kept);
    if (difference.empty())
        return {};
    return "its copy of payload " + member.name + " (" + backupFile.string() + ") has " + difference + " (its manifest records " +
           describeAttributes(*member.attributes) + ")";
}

// Puts `member` (a link, or a file copied from `backupFile`) at `at`, a new
// name, with the attributes the manifest records (a set of an earlier
// version: root's, `mode`); a copy that does not hash to the member's
// SHA-256, or a backup file whose attributes differ from the recorded ones,
// is reported as a damaged backup.
void materialize(const SetMember& member, const fs::path& backupFile, const fs::path& at, mode_t mode, const std::string& setId)
{
    removeDurably(at);
    if (member.isLink()) {
        symlinkDurably(member.linkTarget, at);
        return;
    }
    if (member.attributes) {
        std::string damage;
        try {
            damage = keptAttributesDamage(member, readFileAttributes(backupFile), backupFile);
        } catch (const AttributeError& e) {
            damage = e.what();
        }
        if (!damage.empty())
            throw AgentError(ErrorKind::Failed, "backup set " + setId + " is damaged: " + damage + "; it is marked damaged and never installed");
    }
    const std::string got = copyFileWithAttributes(backupFile, at, member.attributes.value_or(FileAttributes::ofNewFile(mode)));
    if (got != member.sha256) {
        removeDurably(at);
        throw AgentError(ErrorKind::Failed, "backup set " + setId + " is damaged: its copy of payload " + member.name + " (" + backupFile.string() +
                                                ") has SHA-256 " + got + ", its manifest records " + member.sha256 +
                                                "; it is marked damaged and never installed");
    }
}

}  // namespace

// What one run() staged and learned, step by step.
struct TransactionRunner::Attempt {
    Attempt(TransactionPlan p, const Config& config) : plan(std::move(p)), begin{plan.id, plan.kind, {}, plan.dropins}
    {
        std::vector<std::string> names;
        for (const auto& payload : plan.payloads) {
            begin.payloads.push_back({payload.spec->name, payload.spec->path, stagedPathFor(payload.spec->path, plan.id), payload.expectedSha256});
            names.push_back(payload.spec->name);
        }
        units = config.unitsOf(names);
    }

    TransactionPlan plan;
    JournalBegin begin;
    std::vector<StagedFile> staged;
    // The set it installs: each payload's member and the file holding it now.
    std::vector<std::pair<SetMember, fs::path>> newSet;
    std::string newSetId;
    std::string newVersion;
    std::optional<std::string> newInitSha1;
    std::vector<ExpectedComponent> components;  // changed parts /version must report as their new files print
    BackupStore::BackUpResult backup;  // the installed set, backed up
    std::vector<ContainerSummary> containersBack;
    bool liveRestore = false;                 // the running engine keeps its containers through a restart
    std::vector<KeptContainer> keptRunning;   // and these ran when it was stopped
    std::vector<std::string> announced;  // payloads whose rename the journal announced
    std::vector<std::string> units;      // the units this change restarts
    bool holdSocket = false;             // renamed under the running engine, then `restarts`
    std::vector<RestartBatch> restarts;  // with holdSocket: instead of stopping and starting `units`
    bool cancelled = false;
    bool backupDamaged = false;  // a rollback's backup did not hash to its manifest
    std::vector<AgentDiversion> diversions;  // dpkg_owned = "divert": what divertPackaged makes

    const std::string& tx() const { return plan.id; }
    bool isRollback() const { return plan.kind == TransactionKind::Rollback; }
    const PlannedPayload* planned(const std::string& name) const
    {
        for (const auto& p : plan.payloads)
            if (p.spec->name == name)
                return &p;
        return nullptr;
    }
    const StagedFile* stagedOf(const PayloadSpec& spec) const
    {
        for (const auto& sf : staged)
            if (sf.target == spec.path)
                return &sf;
        return nullptr;
    }
};

struct TransactionRunner::RollbackRequest {
    std::string tx;
    BackupSet set;                    // the set to put back
    std::vector<std::string> names;   // the payloads to put back
    std::string why;
    TransactionResult resultIfRestored;  // RolledBack or Cancelled
    std::vector<ContainerSummary> containersBack;
    bool useStaged = true;            // false in a recovery: copy afresh from the backup
    std::vector<std::pair<SetMember, fs::path>> failedSet;  // kept as a backup if the rollback fails too; empty in a recovery
    std::string failedVersion;
    std::vector<std::string> units;   // the units the transaction restarts
};

TransactionRunner::TransactionRunner(const Config& config, Services services)
    : config_(config), s_(std::move(services)), diversions_(config.agent.stateDir / "dpkg-diversions.json")
{
}

void TransactionRunner::report(AgentState state, unsigned percent, const std::string& message)
{
    if (s_.report)
        s_.report(state, percent, message);
}

// One job batch, as `systemctl stop|start docker.socket docker.service`:
// every job enqueued before any is awaited (one job wait in the outage, not
// two), systemd ordering them by their dependencies (a socket before the
// service it activates). The engine's socket is stopped too: once it is gone
// no client can start the old engine again mid-swap.
Task<void> TransactionRunner::unitBatch(const std::vector<std::string>& units, bool start)
{
    if (units.empty())
        co_return;
    const milliseconds timeout = seconds(start ? config_.docker.startTimeoutSec : config_.docker.stopTimeoutSec);
    auto jobs = start ? s_.units.startUnits(units, timeout) : s_.units.stopUnits(units, timeout);  // GCC 12: no temporaries in a co_await
    co_await std::move(jobs);
}

Task<void> TransactionRunner::stopUnits(const std::vector<std::string>& units) { return unitBatch(units, false); }

Task<void> TransactionRunner::startUnits(const std::vector<std::string>& units) { return unitBatch(units, true); }

namespace {

std::string listed(const std::vector<std::string>& units)
{
    std::string out;
    for (const auto& unit : units)
        out += (out.empty() ? "" : ", ") + unit;
    return out;
}

}  // namespace

Task<std::vector<KeptContainer>> TransactionRunner::containersToKeepRunning()
{
    std::vector<KeptContainer> kept;
    try {
        for (const auto& c : co_await s_.engine.containers(seconds(5)))
            if (c.state == "running" && c.pid > 0)
                if (const auto started = processStartTime(c.pid))
                    kept.push_back({c.id, c.name, c.pid, *started});
    } catch (const std::exception& e) {
        spdlog::warn("cannot list the running containers before the stop ({}); whether they keep running is not checked", e.what());
    }
    co_return kept;
}

Task<std::vector<ContainerSummary>> TransactionRunner::containersToBringBack()
{
    std::vector<ContainerSummary> back;
    if (!config_.docker.expectContainersBack)
        co_return back;
    try {
        auto all = co_await s_.engine.containers(seconds(5));
        back = containersExpectedBack(all);
    } catch (const std::exception& e) {
        spdlog::warn("cannot list the running containers before the stop ({}); they will not be checked afterwards", e.what());
    }
    co_return back;
}

Task<void> TransactionRunner::checkEngine(const std::string& expectedVersion, const std::optional<std::string>& expectedInitSha1,
                                          milliseconds timeout, std::vector<ContainerSummary> containersBack, const NewSetProof* proof)
{
    const bool newSet = proof != nullptr;
    // A rollback's check is part of rolling back: keep showing that state,
    // and say which engine is checked.
    const AgentState state = newSet ? AgentState::Checking : AgentState::RollingBack;
    const std::string prefix = newSet ? "" : "checking the restored engine: ";
    HealthExpectations expect;
    expect.serviceUnit = config_.docker.service;
    expect.socketPath = config_.docker.socket.string();
    expect.expectedVersion = expectedVersion;
    expect.expectedInitSha1 = expectedInitSha1;
    expect.timeout = timeout;
    expect.grace = seconds(config_.docker.graceSec);
    if (newSet) {
        // Only a new set must prove more than answering: its smoke command,
        // and that the main process runs the file just installed.
        expect.smokeCommand = config_.docker.smokeCommand;
        if (config_.docker.checkMainExe) {
            expect.expectedExe = executableIdentity(config_.enginePayload().path.string());
            // A payload with units of its own: each of its services runs it now.
            for (const PlannedPayload* p : proof->changed)
                if (p->spec->units && !p->removeTarget)
                    for (const auto& unit : *p->spec->units)
                        if (unit.ends_with(".service") && unit != config_.docker.service)
                            expect.otherExes.emplace_back(unit, executableIdentity(p->spec->path.string()));
        }
        // Cancel ends the new engine's check at its next probe (and the
        // transaction rolls back); the restored engine's check runs to its end.
        expect.cancelled = s_.cancelRequested;
        expect.keptRunning = proof->keptRunning;
        expect.components = proof->components;
    }
    expect.containersBack = std::move(containersBack);
    // Named, not a temporary inside co_await (GCC 12 destroys those twice; see async.hpp).
    HealthProgress progress = [this, &state, &prefix](const std::string& line) { report(state, 85, prefix + line); };
    co_await runHealthCheck(s_.engine, s_.units, s_.pool, expect, progress);
}

// The check of a set that ran before (after a rollback or an unchanged
// restart). Docker 1.10 reports the SHA-1 of the dockerinit it accepts: the
// one now at the target. The smoke command judges a new engine only, so a
// broken smoke command cannot turn a good rollback into "failed".
Task<void> TransactionRunner::checkInstalledSet(const BackupSet& set, std::vector<ContainerSummary> containersBack)
{
    std::optional<std::string> initSha1;
    const PayloadSpec* init = config_.findPayload("dockerinit");
    if (const SetMember* m = set.member("dockerinit"); init && m && m->present)
        initSha1 = co_await runOffLoop(s_.pool, [&] { return sha1OfFile(init->path); });
    co_await checkEngine(set.version, initSha1, seconds(config_.docker.healthTimeoutSec), std::move(containersBack), nullptr);
}

Task<void> TransactionRunner::restoreSet(const BackupSet& set, const std::vector<std::string>& names, const std::string& tx, bool useStaged)
{
    co_await runOffLoop(s_.pool, [&] {
        for (const auto& name : names) {
            const PayloadSpec* spec = config_.findPayload(name);
            const SetMember* member = set.member(name);
            if (!spec)
                continue;  // not configured any more: not ours to change
            if (!member) {
                // Made under another config: a set never takes away what it does not know.
                spdlog::warn("backup set {} has no payload {}; {} is left as it is", set.id, name, spec->path.string());
                continue;
            }
            const fs::path& target = spec->path;
            if (!member->present) {
                removeDurably(target);
                continue;
            }
            if (holdsMember(target, *member))
                continue;  // already back: an earlier attempt got this far
            const fs::path restore = restorePathFor(target, tx);
            if (!useStaged || !holdsMember(restore, *member)) {
                // Missing, partial, or made by an earlier process: never trusted, made again.
                removeDurably(restore);
                try {
                    materialize(*member, set.fileOf(name), copyingPathFor(target, tx), spec->mode, set.id);
                } catch (const AgentError&) {
                    s_.backups.markHealth(set.id, SetHealth::Damaged);
                    throw;
                }
                faultPoint("restore-after-copy");
                renameDurably(copyingPathFor(target, tx), restore);
            }
            renameDurably(restore, target);
            faultPoint("restore-after-rename");
        }
    });
}

void TransactionRunner::removeLeftovers(const JournalBegin& begin)
{
    for (const auto& p : begin.payloads) {
        for (const auto& leftover : {stagedPathFor(p.target, begin.transaction), restorePathFor(p.target, begin.transaction),
                                     copyingPathFor(p.target, begin.transaction), keptPathFor(p.target, begin.transaction)}) {
            try {
                removeDurably(leftover);
            } catch (const std::exception& e) {
                spdlog::warn("cannot remove {}: {}; remove it by hand", leftover.string(), e.what());
            }
        }
    }
}

JournalBegin TransactionRunner::allPayloads(const std::string& tx) const
{
    JournalBegin begin{tx, TransactionKind::Upgrade, {}, {}};
    for (const auto& p : config_.payloads)
        begin.payloads.push_back({p.name, p.path, {}, {}});
    return begin;
}

Task<void> TransactionRunner::journalStep(JournalStepKind step)
{
    co_await runOffLoop(s_.pool, [this, step] { s_.journal.record(step); });
}

Task<void> TransactionRunner::removeLeftoversAndJournal(const JournalBegin& begin)
{
    co_await runOffLoop(s_.pool, [this, &begin] {
        removeLeftovers(begin);
        s_.journal.clear();
    });
}

std::string TransactionRunner::adviceAfterFailedRollback(const BackupSet& set) const
{
    return " Find the cause with `systemctl status " + config_.docker.service + "` and `journalctl -u " + config_.docker.service +
           "`; once it is fixed, `armdockctl rollback --to " + set.id + "` installs backup set " + set.id + versionNote(set) +
           " again (it is kept in " + set.dir.string() + ") and checks it.";
}

Task<std::string> TransactionRunner::keepFailedSet(const RollbackRequest& r)
{
    if (r.failedSet.empty())
        co_return std::string();
    try {
        // Hashing and copying the failed files: off the loop.
        auto kept = co_await runOffLoop(s_.pool, [&]() -> std::optional<BackupSet> {
            std::vector<std::pair<SetMember, fs::path>> files;
            for (const auto& [member, stagedFile] : r.failedSet) {
                if (!member.present || member.isLink()) {
                    files.push_back({member, {}});
                    continue;
                }
                // Where its bytes are now: aside (hard link), still at the target, or still staged.
                std::optional<fs::path> holder;
                for (const auto& candidate : {keptPathFor(member.target, r.tx), member.target, stagedFile})
                    if (!candidate.empty() && holdsMember(candidate, member)) {
                        holder = candidate;
                        break;
                    }
                if (!holder)
                    return std::nullopt;
                files.push_back({member, *holder});
            }
            BackupSet set = s_.backups.keepFiles(files, r.failedVersion);
            s_.backups.markHealth(set.id, SetHealth::Failed);
            return set;
        });
        if (!kept)
            co_return " The failed new set could not be kept (its files are gone).";
        co_return " The failed new set is kept as backup " + kept->id + ", marked failed: Rollback never picks it.";
    } catch (const std::exception& e) {
        co_return " The failed new set could not be kept (" + std::string(e.what()) + ").";
    }
}

Task<TransactionOutcome> TransactionRunner::rollBack(RollbackRequest r)
{
    const std::string& tx = r.tx;
    const BackupSet& set = r.set;
    spdlog::error("transaction {}: {}; rolling back to backup set {}{}", tx, r.why, set.id, versionNote(set));
    report(AgentState::RollingBack, 85, "rolling back to " + (set.version.empty() ? set.id : set.version));
    std::string failure;
    bool restored = false;
    try {
        co_await journalStep(JournalStepKind::RollingBack);
        faultPoint("rollback-begin");
        co_await stopUnits(r.units);
        faultPoint("rollback-after-stop");
        for (const auto& name : r.names)
            if (const PayloadSpec* spec = config_.findPayload(name); spec && !r.failedSet.empty())
                ::link(spec->path.c_str(), keptPathFor(spec->path, tx).c_str());  // a missing one is looked for elsewhere later
        co_await restoreSet(set, r.names, tx, r.useStaged);
        co_await journalStep(JournalStepKind::Restored);
        restored = true;
        faultPoint("rollback-after-restore");
        co_await startUnits(r.units);
        faultPoint("rollback-after-start");
        co_await checkInstalledSet(set, r.containersBack);
    } catch (...) {
        failure = describeException(std::current_exception());
    }

    const JournalBegin begin = allPayloads(tx);
    if (failure.empty()) {
        co_await runOffLoop(s_.pool, [&] { s_.backups.markHealth(set.id, SetHealth::Healthy); });
        co_await removeLeftoversAndJournal(begin);
        co_return TransactionOutcome{r.resultIfRestored, r.why + "; the previous engine" + versionNote(set) + " was restored and Docker answers",
                                     set.version};
    }
    spdlog::critical("transaction {}: rollback failed too: {}", tx, failure);
    if (!restored) {
        // Some targets may hold the old files and some the new: the journal
        // stays until the set on disk is whole again (a recovery finishes it).
        TransactionOutcome outcome{TransactionResult::Failed,
                                   r.why + "; the rollback failed too, while putting back backup set " + set.id + ": " + failure +
                                       ". The files on disk may be a mixed set: the journal " + s_.journal.file().string() +
                                       " is kept, so Docker's guard holds its start, and the agent restores the set again when it starts next."
                                       + adviceAfterFailedRollback(set),
                                   ""};
        outcome.journalKept = true;
        co_return outcome;
    }
    const std::string kept = co_await keepFailedSet(r);
    co_await removeLeftoversAndJournal(begin);
    co_return TransactionOutcome{TransactionResult::Failed,
                                 r.why + "; the rollback failed too: " + failure + ". Backup set " + set.id + versionNote(set) +
                                     " is installed again, but Docker did not pass its check with it; nothing more is tried." + kept +
                                     adviceAfterFailedRollback(set),
                                 ""};
}

// --- the steps of run()

namespace {

// "dpkg-divert" or "dpkg-divert --root R": the commands of the advice work on the agent's dpkg_root.
std::string dpkgCommand(const std::string& program, const fs::path& root)
{
    return root.lexically_normal() == "/" ? program : program + " --root " + root.string();
}

}  // namespace

// Before anything is copied: a target that a Debian package owns, not
// diverted, would be put back by that package's next upgrade ([agent] dpkg_owned).
Task<void> TransactionRunner::checkPackageOwners(Attempt& a)
{
    // A rollback is never refused for this: it puts back what was installed,
    // packaged or not; with "divert" it diverts what it installs over a packaged file.
    if (a.isRollback() && config_.agent.dpkgOwned != DpkgOwnedMode::Divert)
        co_return;
    std::vector<fs::path> targets;
    for (const auto& p : a.plan.payloads)
        if (!p.removeTarget && p.linkTarget.empty())
            targets.push_back(p.spec->path);
    if (targets.empty())
        co_return;
    const fs::path root = config_.agent.dpkgRoot;
    std::set<std::string> held;
    const auto owners = co_await runOffLoop(s_.pool, [&] {
        held = heldPackages(root);
        return findPackageOwners(root, targets);
    });
    for (const auto& p : a.plan.payloads) {
        const auto found = owners.find(p.spec->path);
        if (found == owners.end() || found->second.packages.empty())
            continue;
        const PackageOwnership& owner = found->second;
        const std::string target = p.spec->path.string();
        const std::string& dpkgName = owner.listedAs;  // what dpkg's commands name it by
        const std::string packages = listed(owner.packages);
        if (owner.diverted()) {
            spdlog::info("transaction {}: payload {}: {} belongs to package {} and is diverted to {} ({} diversion): the package's next "
                         "version goes there",
                         a.tx(), p.spec->name, target, packages, owner.divertedTo, owner.divertedBy);
            continue;
        }
        const std::string why = "payload " + p.spec->name + ": " + target + " belongs to package " + packages + " (`" +
                                dpkgCommand("dpkg", root) + " -S " + dpkgName + "`): its next upgrade (apt-get upgrade, unattended-upgrades) "
                                "would put the packaged file back over the one the agent installs";
        if (config_.agent.dpkgOwned == DpkgOwnedMode::Ignore) {
            spdlog::warn("transaction {}: {}; installing it anyway (dpkg_owned = \"ignore\")", a.tx(), why);
            continue;
        }
        if (config_.agent.dpkgOwned == DpkgOwnedMode::Divert) {
            const std::string& package = owner.packages.front();
            a.diversions.push_back({p.spec->name, p.spec->path, dpkgName, package, !held.contains(package), a.tx(), false});
            continue;
        }
        throw AgentError(ErrorKind::PayloadRejected,
                         why + ". Divert the packaged file (`" + dpkgCommand("dpkg-divert", root) + " --local --divert " + dpkgName +
                             ".distrib --add " + dpkgName + "`: the package's next version goes to " + target + ".distrib) and hold it (`" +
                             (root.lexically_normal() == "/" ? "apt-mark hold " + owner.packages.front()
                                                              : "echo '" + owner.packages.front() + " hold' | dpkg --root " + root.string() +
                                                                    " --set-selections") +
                             "`), then upgrade again; or set [agent] dpkg_owned = \"ignore\" in " +
                             config_.sourceFile.string() + " to install it anyway");
    }
}

Task<std::string> TransactionRunner::divertPackaged(Attempt& a)
{
    if (a.diversions.empty() || a.plan.dryRun)
        co_return std::string();
    report(AgentState::Staging, 45, "diverting the packaged files and holding their packages");
    const fs::path root = config_.agent.dpkgRoot;
    std::string failure;
    co_await runOffLoop(s_.pool, [&] {
        try {
            // Recorded first (one entry per payload): a crash while they are made finds them.
            auto all = diversions_.load();
            std::erase_if(all, [&](const AgentDiversion& r) {
                return std::any_of(a.diversions.begin(), a.diversions.end(), [&](const AgentDiversion& d) { return d.payload == r.payload; });
            });
            all.insert(all.end(), a.diversions.begin(), a.diversions.end());
            diversions_.save(all);
        } catch (const std::exception& e) {
            failure = e.what();
            return;
        }
        for (const auto& d : a.diversions) {
            try {
                makeDiversion(root, d);
                spdlog::info("transaction {}: payload {}: diverted {} to {}.distrib{}", a.tx(), d.payload, d.listedAs, d.listedAs,
                             d.heldByAgent ? " and held " + d.package : "");
                faultPoint("after-divert");
            } catch (const std::exception& e) {
                failure = "payload " + d.payload + ": cannot divert the packaged " + d.target.string() + " (package " + d.package + "): " + e.what();
                break;  // abandon() reconciles: what was made is undone, what was not is dropped
            }
        }
    });
    if (failure.empty())
        co_return failure;
    co_return failure + "; fix what dpkg said (`dpkg --audit`, a held lock), or set [agent] dpkg_owned = \"refuse\" and divert it by hand";
}

Task<void> TransactionRunner::reconcileDiversions(const std::string& tx)
{
    const fs::path root = config_.agent.dpkgRoot;
    std::vector<std::string> said;
    co_await runOffLoop(s_.pool, [&] {
        try {
            said = armdock::reconcileDiversions(root, diversions_);
        } catch (const std::exception& e) {
            said.push_back(std::string(e.what()) + "; the diversions are left as they are");
        }
    });
    for (const auto& line : said)
        spdlog::info("transaction {}: {}", tx, line);
}

Task<void> TransactionRunner::stage(Attempt& a)
{
    report(AgentState::Staging, 10, "copying " + std::to_string(a.plan.payloads.size()) + " payload(s) beside their targets");
    co_await runOffLoop(s_.pool, [&] { s_.journal.begin(a.begin); });
    faultPoint("after-begin");
    a.staged = co_await runOffLoop(s_.pool, [&] {
        std::vector<StagedFile> out;
        for (auto& p : a.plan.payloads) {
            if (p.removeTarget)
                continue;
            if (!p.linkTarget.empty()) {
                const fs::path at = stagedPathFor(p.spec->path, a.tx());
                symlinkDurably(p.linkTarget, at);
                out.push_back({at, p.spec->path, p.expectedSha256, "", 0, {}});
                continue;
            }
            // Outside the try below: a target the agent refuses is not a damaged backup.
            const FileAttributes attributes = attributesToStage(a, p);
            try {
                out.push_back(stageCopy(p.source.fd.get(), p.source.st, p.spec->name, p.spec->path, attributes, a.tx(), p.expectedSha256,
                                        p.signature ? &*p.signature : nullptr));
                if (p.signature)
                    spdlog::info("transaction {}: payload {} is signed by key {} ({}), trusted comment \"{}\"", a.tx(), p.spec->name,
                                 keyIdText(p.signature->signature.keyId), p.signature->signer.file.string(), p.signature->signature.trustedComment);
            } catch (const AgentError& e) {
                if (a.isRollback() && e.kind() == ErrorKind::PayloadRejected && !a.plan.backupId.empty()) {
                    s_.backups.markHealth(a.plan.backupId, SetHealth::Damaged);
                    a.backupDamaged = true;
                    throw AgentError(ErrorKind::PayloadRejected, "backup set " + a.plan.backupId + " is damaged, marked so and never installed: " +
                                                                     e.what() + " (source " + p.source.path + ")");
                }
                throw AgentError(e.kind(), std::string(e.what()) + " (source " + p.source.path + ")");
            }
        }
        return out;
    });
    faultPoint("after-stage");
}

// An upgrade's new file gets what the installed one is (attributesToCarry);
// a rollback's, what its backup recorded (the backup file must still have
// it: otherwise the set is damaged); a backup of an earlier version that
// recorded nothing restores with the installed file's attributes.
FileAttributes TransactionRunner::attributesToStage(Attempt& a, const PlannedPayload& p)
{
    if (a.isRollback() && !a.plan.backupId.empty()) {
        const auto set = s_.backups.find(a.plan.backupId);
        const SetMember* member = set ? set->member(p.spec->name) : nullptr;
        if (member && member->attributes) {
            std::string damage;
            try {
                damage = keptAttributesDamage(*member, readFileAttributes(p.source.fd.get(), p.source.path), p.source.path);
            } catch (const AttributeError& e) {
                damage = e.what();
            }
            if (!damage.empty()) {
                s_.backups.markHealth(set->id, SetHealth::Damaged);
                a.backupDamaged = true;
                throw AgentError(ErrorKind::PayloadRejected, "backup set " + set->id + " is damaged, marked so and never installed: " + damage);
            }
            return *member->attributes;
        }
    }
    return attributesToCarry(p.spec->name, p.spec->path, p.spec->mode);
}

Task<void> TransactionRunner::describeNewSet(Attempt& a)
{
    report(AgentState::Staging, 30, "learning the new engine's version");
    co_await runOffLoop(s_.pool, [&] {
        // Each payload of the new set and the file that holds it now: staged, or the target it keeps.
        std::map<std::string, std::optional<fs::path>> fileOf;
        std::vector<SetMember> members;
        for (const auto& spec : config_.payloads) {
            const PlannedPayload* p = a.planned(spec.name);
            const StagedFile* sf = a.stagedOf(spec);
            SetMember m{spec.name, spec.path, false, "", ""};
            fs::path holder;
            if (p && p->removeTarget) {
                fileOf[spec.name] = std::nullopt;
            } else if (p && sf) {
                m.present = true;
                m.sha256 = sf->sha256;
                m.linkTarget = p->linkTarget;
                if (p->linkTarget.empty())
                    m.attributes = sf->attributes;
                holder = sf->staged;
                fileOf[spec.name] = p->linkTarget.empty() ? sf->staged : linkReferent(spec.path, p->linkTarget);
            } else {
                m = describeTarget(spec);
                holder = spec.path;
                if (m.present && !m.sha256.empty())
                    fileOf[spec.name] = spec.path;
            }
            members.push_back(m);
            a.newSet.push_back({m, holder});
        }
        a.newSetId = setIdOf(members);
        const PayloadSpec& engineSpec = config_.enginePayload();
        const auto engineFile = fileOf[engineSpec.name];
        if (a.isRollback() && !a.plan.knownVersion.empty())
            a.newVersion = a.plan.knownVersion;
        else if (engineFile && !engineSpec.versionArgs.empty())
            a.newVersion = probeNewFile(engineSpec, *engineFile);
        // The parts /version reports: each changed one must be what the engine uses afterwards.
        for (const auto& spec : config_.payloads)
            if (const PlannedPayload* p = a.planned(spec.name); p && !spec.component.empty() && fileOf[spec.name])
                a.components.push_back({spec.component, probeNewFile(spec, *fileOf[spec.name]), spec.name, spec.path.string()});
        const PayloadSpec* init = config_.findPayload("dockerinit");
        if (!init || !fileOf[init->name])
            return;
        const fs::path initFile = *fileOf[init->name];
        const StagedFile* sf = a.stagedOf(*init);
        a.newInitSha1 = sf && !sf->sha1.empty() ? sf->sha1 : sha1OfFile(initFile);
        // Docker 1.10 runs only the dockerinit whose SHA-1 was compiled into it.
        if (config_.docker.dockerinitPairing && engineFile && !fileContainsText(*engineFile, *a.newInitSha1))
            throw AgentError(ErrorKind::PayloadRejected,
                             "dockerinit pairing: the engine " + engineSpec.path.string() + " of the new set does not embed the SHA-1 " +
                                 *a.newInitSha1 + " of its dockerinit " + init->path.string() +
                                 "; Docker 1.10 would refuse to run it. Upgrade docker and dockerinit together from the same build, "
                                 "or set dockerinit_pairing = false for engines without dockerinit");
    });
}

// `spec`'s version as its new `file` prints it. The probe runs under the
// agent's own bounding set: say why it cannot, rather than "EPERM".
std::string TransactionRunner::probeNewFile(const PayloadSpec& spec, const fs::path& file) const
{
    if (const std::string why = whyNotRunnableHere(readFileAttributes(file)); !why.empty())
        throw AgentError(ErrorKind::PayloadRejected,
                         "payload " + spec.name + ": the agent cannot run the new " + file.string() + " (`" + spec.versionArgs.front() +
                             "`) to learn its version: " + why + ". The new file carries these from " + spec.path.string() +
                             ". Add them to the CapabilityBoundingSet= of the agent's unit (a drop-in), or give " + spec.path.string() +
                             " them without the effective flag (`setcap CAP+p`), or remove them from it "
                             "(`setcap -r`) and set them again after the upgrade");
    return s_.probeVersion(file, spec.versionArgs);
}

// Before anything is backed up or stopped: does the running engine keep its
// containers through a restart (live-restore on, no Swarm), and may this
// change rely on it? "require" refuses what live-restore cannot carry.
Task<void> TransactionRunner::checkLiveRestore(Attempt& a)
{
    const LiveRestoreMode mode = config_.docker.liveRestore;
    if (mode == LiveRestoreMode::Off || a.units.empty())
        co_return;
    const bool require = mode == LiveRestoreMode::Require;
    LiveRestoreInfo info;
    std::string running;
    try {
        info = co_await s_.engine.liveRestore(seconds(5));
        running = co_await s_.engine.version(seconds(5));
    } catch (const std::exception& e) {
        if (require)
            throw AgentError(ErrorKind::Failed, "docker.live_restore = \"require\": cannot ask the running engine on " + config_.docker.socket.string() +
                                                    " whether it keeps its containers (" + e.what() + ")");
        spdlog::warn("cannot ask the engine about live-restore ({}); the containers-back check stands", e.what());
        co_return;
    }
    if (require) {
        std::string why;
        if (!info.enabled)
            why = "the running engine has live-restore off; start dockerd with --live-restore (or \"live-restore\": true in "
                  "/etc/docker/daemon.json, then systemctl reload " + config_.docker.service + ")";
        else if (info.swarm)
            why = "this node is in a Swarm, where live-restore does not keep containers running";
        else if (releaseLine(running).empty() || releaseLine(running) != releaseLine(a.newVersion))
            why = "engine " + running + " -> " + a.newVersion + " is not a patch release of the same YY.MM, the only change live-restore carries";
        if (!why.empty())
            throw AgentError(ErrorKind::Failed, "docker.live_restore = \"require\": " + why +
                                                    " (live_restore = \"auto\" lets such a change run)");
    }
    a.liveRestore = info.enabled && !info.swarm;
}

// hold_socket, decided before anything changes: a socket that is not
// listening has nothing to hold (the units stop and start as without it).
Task<void> TransactionRunner::planSocketHold(Attempt& a)
{
    const std::string& socket = config_.docker.socketUnit;
    if (!config_.docker.holdSocket || a.units.empty())
        co_return;
    std::string state;
    std::vector<std::string> partOf;
    try {
        state = co_await s_.units.activeState(socket);
        partOf = co_await s_.units.partOf(socket);
    } catch (const std::exception& e) {
        throw AgentError(ErrorKind::Failed, "docker.hold_socket = true: cannot read the state and PartOf= of " + socket + " from systemd (" +
                                                e.what() + "); see `systemctl status " + socket + "`");
    }
    if (state != "active") {
        spdlog::warn("{} is {}, not listening: nothing to hold; the units stop and start as without docker.hold_socket", socket, state);
        co_return;
    }
    a.holdSocket = true;
    a.restarts = heldRestarts(a.units, socket, config_.docker.service, partOf);
}

Task<void> TransactionRunner::backUpInstalled(Attempt& a)
{
    report(AgentState::Staging, 40, "backing up the installed set");
    a.backup = co_await runOffLoop(s_.pool, [&] {
        return s_.backups.backUp(config_.payloads, [&](const fs::path& f) {
            try {
                return s_.probeVersion(f, config_.enginePayload().versionArgs);
            } catch (const std::exception&) {
                return std::string();
            }
        });
    });
    if (a.backup.set.id == a.newSetId && !a.plan.reinstall)
        throw AgentError(ErrorKind::PayloadRejected, "the requested engine set is already installed (set " + a.newSetId + "); nothing to do");
    // Stage the restore copies too, so that a rollback needs no copying and no free space.
    co_await runOffLoop(s_.pool, [&] {
        for (const auto& p : a.plan.payloads)
            if (const SetMember* m = a.backup.set.member(p.spec->name); m && m->present)
                materialize(*m, a.backup.set.fileOf(p.spec->name), restorePathFor(p.spec->path, a.tx()), p.spec->mode, a.backup.set.id);
        s_.journal.record(JournalStepKind::BackedUp, a.backup.set.id);
        if (a.backup.created)
            s_.journal.record(JournalStepKind::BackupNew, a.backup.set.id);  // so a recovery can drop it like a rollback does
    });
    faultPoint("after-backup");
    // What runs now: its containers must come back, and an engine that
    // answers with the backed-up set's version proves that set healthy.
    a.containersBack = co_await containersToBringBack();
    if (a.liveRestore)
        a.keptRunning = co_await containersToKeepRunning();
    try {
        const std::string running = co_await s_.engine.version(seconds(2));
        if (!running.empty() && running == a.backup.set.version)
            co_await runOffLoop(s_.pool, [&] { s_.backups.markHealth(a.backup.set.id, SetHealth::Healthy); });
    } catch (const std::exception& e) {
        spdlog::warn("the engine does not answer before the stop ({}); backup set {} stays unchecked", e.what(), a.backup.set.id);
    }
}

Task<void> TransactionRunner::stopForSwap(Attempt& a)
{
    if (a.holdSocket) {
        std::vector<std::string> restarting;
        for (const auto& batch : a.restarts)
            restarting.insert(restarting.end(), batch.units.begin(), batch.units.end());
        report(AgentState::Swapping, 50, "holding " + config_.docker.socketUnit + ": the files change under the running engine, then " +
                                             (restarting.empty() ? std::string("nothing") : listed(restarting)) + " restarts with the socket still listening");
    } else
        report(AgentState::Stopping, 50, a.units.empty() ? "no unit runs the changed files: swapping them with no restart" : "stopping " + listed(a.units));
    // One journal write (one fdatasync), still before the outage, announces
    // the stop and every payload's rename: the swap inside the outage is then
    // only renames. A recovery restores every payload named here.
    std::vector<JournalStep> steps{{JournalStepKind::Stopping, ""}};
    for (const auto& p : a.plan.payloads) {
        steps.push_back({JournalStepKind::Swap, p.spec->name});
        a.announced.push_back(p.spec->name);
    }
    co_await runOffLoop(s_.pool, [&] { s_.journal.recordAll(steps); });
    faultPoint("before-stop");
    if (a.holdSocket)
        co_return;  // Linux keeps each running program's file: the renames go under it
    co_await stopUnits(a.units);
    faultPoint("after-stop");
}

Task<void> TransactionRunner::swapAndStart(Attempt& a)
{
    report(AgentState::Swapping, 60, "renaming the staged files over their targets");
    co_await runOffLoop(s_.pool, [&] {
        // The journal announced every rename; the staged files were fsync'ed
        // when staged; renameDurably fsyncs each folder after its rename.
        for (std::size_t i = 0; i < a.plan.payloads.size(); ++i) {
            const auto& p = a.plan.payloads[i];
            if (p.removeTarget)
                removeDurably(p.spec->path);
            else
                renameDurably(stagedPathFor(p.spec->path, a.tx()), p.spec->path);
            faultPoint(i == 0 ? FaultPointName("after-first-rename") : FaultPointName("after-rename"));
        }
    });
    faultPoint("after-swap");
    co_await journalStep(JournalStepKind::Swapped);
    if (a.holdSocket) {
        co_await restartHeld(a);
    } else {
        if (!a.units.empty())
            report(AgentState::Starting, 70, "starting " + listed(a.units));
        co_await startUnits(a.units);
    }
    faultPoint("after-start");
}

// Each batch restarts while the socket listens: a client that connects
// meanwhile waits in its backlog and is answered by the engine that starts.
Task<void> TransactionRunner::restartHeld(Attempt& a)
{
    const milliseconds timeout = seconds(config_.docker.stopTimeoutSec + config_.docker.startTimeoutSec);
    for (const auto& batch : a.restarts) {
        report(AgentState::Starting, 70, "restarting " + listed(batch.units) + (batch.mode == JobMode::Replace ? "" : " alone (" + std::string(str(batch.mode)) +
                                         ": " + config_.docker.socketUnit + " is PartOf= it)") + "; " + config_.docker.socketUnit + " keeps listening");
        auto jobs = s_.units.restartUnits(batch.units, timeout, batch.mode);  // GCC 12: no temporaries in a co_await
        co_await std::move(jobs);
    }
}

Task<void> TransactionRunner::check(Attempt& a)
{
    if (s_.cancelRequested())
        throw HealthCheckCancelled("cancelled by request after the swap");
    report(AgentState::Checking, 80, "checking the new engine on " + config_.docker.socket.string());
    NewSetProof proof{{}, a.keptRunning, a.components};
    for (const auto& p : a.plan.payloads)
        proof.changed.push_back(&p);
    co_await checkEngine(a.newVersion, a.newInitSha1, a.plan.healthTimeout, a.containersBack, &proof);
    faultPoint("after-check");
}

Task<TransactionOutcome> TransactionRunner::commit(Attempt& a)
{
    report(AgentState::Checking, 95, "committing");
    co_await journalStep(JournalStepKind::Committed);
    faultPoint("after-commit");
    co_await reconcileDiversions(a.tx());
    co_await runOffLoop(s_.pool, [&] { s_.backups.markHealth(a.newSetId, SetHealth::Healthy); });
    co_await removeLeftoversAndJournal(a.begin);
    try {
        co_await runOffLoop(s_.pool, [&] { s_.backups.prune(config_.agent.keepBackups, a.backup.set.id); });
    } catch (const std::exception& e) {
        spdlog::warn("cannot prune old backups in {}: {}", s_.backups.dir().string(), e.what());
    }
    std::string note = a.plan.reinstall ? "backup set " + a.newSetId + " was started again and passed its check" : "";
    if (a.liveRestore)
        note += (note.empty() ? "" : "; ") + std::to_string(a.keptRunning.size()) + " container(s) kept running through the restart";
    co_return TransactionOutcome{TransactionResult::Success, note, a.newVersion};
}

Task<TransactionOutcome> TransactionRunner::abandon(Attempt& a, TransactionOutcome outcome)
{
    co_await reconcileDiversions(a.tx());
    co_await runOffLoop(s_.pool, [&] {
        removeLeftovers(a.begin);
        if (a.backup.created)
            s_.backups.remove(a.backup.set.id);
        try {
            s_.journal.clear();
        } catch (const std::exception& e) {
            spdlog::error("cannot remove the journal {}: {}", s_.journal.file().string(), e.what());
        }
    });
    co_return outcome;
}

// Cancel between the stop and the first rename: nothing changed on disk, so
// the engine that ran is started again as it is (one outage, not two).
Task<TransactionOutcome> TransactionRunner::restartUnchanged(Attempt& a)
{
    if (a.holdSocket)  // nothing was stopped
        co_return co_await abandon(a, {TransactionResult::Cancelled, "cancelled by request before any file changed; Docker was not interrupted", ""});
    const std::string why = "cancelled by request after Docker was stopped, before any file changed";
    std::string failure;
    try {
        co_await journalStep(JournalStepKind::Restored);  // the set on disk is whole: the old one
        report(AgentState::Starting, 70, "cancelled: starting the engine that ran before");
        co_await startUnits(a.units);
        co_await checkInstalledSet(a.backup.set, a.containersBack);
    } catch (...) {
        failure = describeException(std::current_exception());
    }
    if (failure.empty())
        co_return co_await abandon(a, {TransactionResult::Cancelled, why + "; the engine that ran before was started again and answers", a.backup.set.version});
    RollbackRequest r{a.tx(), a.backup.set, a.announced, why + ", and starting it again failed: " + failure, TransactionResult::Cancelled, a.containersBack, true,
                      {}, "", a.units};
    co_return co_await rollBackAttempt(a, std::move(r));
}

Task<TransactionOutcome> TransactionRunner::run(TransactionPlan plan)
{
    Attempt a(std::move(plan), config_);
    // Staging: all of it while Docker still runs, so the downtime holds no copying.
    std::string refusal;
    try {
        co_await checkPackageOwners(a);
        co_await stage(a);
        co_await describeNewSet(a);
        co_await checkLiveRestore(a);
        co_await planSocketHold(a);
        if (!a.plan.dryRun && !s_.cancelRequested())
            co_await backUpInstalled(a);
    } catch (...) {
        refusal = describeException(std::current_exception());
    }
    if (!refusal.empty()) {
        TransactionOutcome rejected{TransactionResult::Rejected, refusal + "; nothing was changed and Docker was not interrupted", ""};
        if (a.backupDamaged)
            rejected.damagedBackup = a.plan.backupId;
        co_return co_await abandon(a, rejected);
    }
    if (s_.cancelRequested())
        co_return co_await abandon(a, {TransactionResult::Cancelled, "cancelled by request before Docker was stopped; nothing was changed", ""});
    if (a.plan.dryRun)
        co_return co_await abandon(a, {TransactionResult::Success, "dry run: verified and staged; this set would install engine version " + a.newVersion +
                                                      "; nothing was changed", ""});

    const std::string hookFailed = co_await beforeStopHook(a);
    if (!hookFailed.empty())
        co_return co_await abandon(a, {TransactionResult::Rejected, hookFailed + "; nothing was changed and Docker was not interrupted", ""});
    if (s_.cancelRequested())
        co_return co_await abandon(a, {TransactionResult::Cancelled, "cancelled by request before Docker was stopped; nothing was changed", ""});
    const std::string divertFailed = co_await divertPackaged(a);
    if (!divertFailed.empty())
        co_return co_await abandon(a, {TransactionResult::Rejected, divertFailed + "; nothing was changed and Docker was not interrupted", ""});

    // The outage: each step journalled before it takes effect.
    TransactionOutcome outcome = co_await outage(a);
    co_return co_await afterHook(a, std::move(outcome));
}

Task<TransactionOutcome> TransactionRunner::outage(Attempt& a)
{
    std::string failure;
    try {
        co_await stopForSwap(a);
    } catch (...) {
        failure = describeException(std::current_exception());
    }
    if (failure.empty() && s_.cancelRequested())
        co_return co_await restartUnchanged(a);
    if (failure.empty()) {
        try {
            co_await swapAndStart(a);
            co_await check(a);
        } catch (const HealthCheckCancelled& e) {
            a.cancelled = true;
            failure = e.what();
        } catch (...) {
            failure = describeException(std::current_exception());
        }
    }
    if (failure.empty())
        co_return co_await commit(a);

    RollbackRequest r{a.tx(), a.backup.set, a.announced, failure, a.cancelled ? TransactionResult::Cancelled : TransactionResult::RolledBack, a.containersBack, true,
                      a.newSet, a.newVersion, a.units};
    if (a.announced.empty())
        for (const auto& p : a.plan.payloads)
            r.names.push_back(p.spec->name);  // a failure inside the stop: restoring is harmless
    co_return co_await rollBackAttempt(a, std::move(r));
}

HookContext TransactionRunner::hookContext(const Attempt& a) const { return {a.tx(), a.backup.set.version, a.newVersion, "", ""}; }

Task<std::string> TransactionRunner::beforeStopHook(Attempt& a)
{
    const auto& command = config_.hooks.beforeStop;
    if (command.empty())
        co_return std::string();
    report(AgentState::Staging, 45, "running hook before_stop");
    const auto timeout = seconds(config_.hooks.timeoutSec);
    const HookContext context = hookContext(a);
    auto failed = co_await runOffLoop(s_.pool, [&] { return runHook(HookPoint::BeforeStop, command, timeout, context); });
    if (!failed.empty())
        spdlog::error("{}", failed);
    co_return failed;
}

Task<TransactionOutcome> TransactionRunner::afterHook(Attempt& a, TransactionOutcome outcome)
{
    const HookPoint point = outcome.result == TransactionResult::Success ? HookPoint::AfterSuccess : HookPoint::AfterRollback;
    const auto& command = point == HookPoint::AfterSuccess ? config_.hooks.afterSuccess : config_.hooks.afterRollback;
    if (command.empty())
        co_return outcome;
    HookContext context = hookContext(a);
    context.result = str(outcome.result);
    context.message = outcome.message;
    const auto timeout = seconds(config_.hooks.timeoutSec);
    const std::string failed = co_await runOffLoop(s_.pool, [&] { return runHook(point, command, timeout, context); });
    if (!failed.empty()) {
        spdlog::warn("{}; the transaction's result stands ({})", failed, str(outcome.result));
        outcome.message += (outcome.message.empty() ? "" : "; ") + failed + " (the transaction's result stands)";
    }
    co_return outcome;
}

Task<TransactionOutcome> TransactionRunner::rollBackAttempt(Attempt& a, RollbackRequest r)
{
    auto outcome = co_await rollBack(std::move(r));
    if (!outcome.journalKept)  // the set on disk is whole again
        co_await reconcileDiversions(a.tx());
    // A transaction that rolled back adds no backup: the set it saved is the one installed again.
    if (outcome.result != TransactionResult::Failed && a.backup.created)
        co_await runOffLoop(s_.pool, [&] { s_.backups.remove(a.backup.set.id); });
    co_return outcome;
}

Task<TransactionOutcome> TransactionRunner::recover(JournalContents journal)
{
    const JournalBegin& begin = journal.begin;
    const std::string tx = begin.transaction;
    const std::string where = "transaction " + tx + " (" + str(begin.kind) + ") was interrupted at step '" + journal.lastStep() + "'";
    spdlog::warn("{}; recovering", where);

    if (!journal.has(JournalStepKind::BackedUp) || journal.has(JournalStepKind::Committed)) {
        // Nothing outside the hidden staged files had changed, or the commit was already on disk.
        co_await reconcileDiversions(tx);
        co_await removeLeftoversAndJournal(begin);
        // The message is shown in Progress and Finished, so a crash after the commit is reported too.
        if (journal.has(JournalStepKind::Committed))
            co_return TransactionOutcome{TransactionResult::Success, where + " after the commit; the new engine stays installed and the staged copies were removed", ""};
        co_return TransactionOutcome{TransactionResult::RolledBack, where + " before anything changed; the staged copies were removed", ""};
    }
    const std::string setId = journal.detailOf(JournalStepKind::BackedUp);
    auto set = co_await runOffLoop(s_.pool, [&] { return s_.backups.find(setId); });
    // Like a transaction that rolled back, a recovered one adds no backup: the
    // set it saved is the one installed again.
    const bool backupIsNew = journal.has(JournalStepKind::BackupNew);
    if (!journal.has(JournalStepKind::Stopping)) {
        co_await reconcileDiversions(tx);
        co_await runOffLoop(s_.pool, [&] {
            removeLeftovers(begin);
            s_.journal.clear();
            if (backupIsNew && set)
                s_.backups.remove(set->id);
        });
        co_return TransactionOutcome{TransactionResult::RolledBack, where + " before Docker was stopped; nothing had changed", ""};
    }
    if (!set) {
        // Without the backup nothing can be put back: the journal stays, so Docker's guard keeps a mixed set from starting.
        TransactionOutcome lost{TransactionResult::Failed, where + ", and its backup set " + setId + " is missing from " + s_.backups.dir().string() +
                                              "; the journal " + s_.journal.file().string() + " is kept. Check the files of every payload by hand, "
                                              "then remove the journal and start " + config_.docker.service, ""};
        lost.journalKept = true;
        co_return lost;
    }
    std::vector<std::string> names;
    for (const auto& p : begin.payloads)
        names.push_back(p.name);
    RollbackRequest r{tx, *set, {}, where, TransactionResult::RolledBack, {}, false, {}, "", config_.unitsOf(names)};
    for (const auto& step : journal.steps)
        if (step.step == JournalStepKind::Swap && std::find(r.names.begin(), r.names.end(), step.detail) == r.names.end())
            r.names.push_back(step.detail);
    auto outcome = co_await rollBack(std::move(r));
    if (!outcome.journalKept)  // the set installed before is whole again
        co_await reconcileDiversions(tx);
    if (outcome.result != TransactionResult::Failed && backupIsNew)
        co_await runOffLoop(s_.pool, [&] { s_.backups.remove(set->id); });
    // What the crashed transaction left beside the targets (staged copies of the new set).
    if (!outcome.journalKept)
        co_await runOffLoop(s_.pool, [&] { removeLeftovers(begin); });
    co_return outcome;
}

}  // namespace armdock
