#include "transaction.hpp"

// GCC 12 inlines Boost.Asio 1.74's coroutine frame allocator (the frame's
// class operator new hands out a recycled block or a global ::operator new
// one; its class operator delete takes it back) and then reports the class
// delete as "mismatched" with the global new it can see inside: a false
// positive, on the largest coroutine of this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <system_error>

#include "durable_fs.hpp"
#include "engine_version.hpp"
#include "errors.hpp"
#include "fault_point.hpp"
#include "health_check.hpp"
#include "logging.hpp"
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
//   <tx>-kept     a hard link to the new file while a rollback runs (kept if the rollback fails)
fs::path restorePathFor(const fs::path& target, const std::string& tx) { return stagedPathFor(target, tx + "-restore"); }
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

// The set the transaction will install, as files on disk: the staged copy of
// each changed payload, the current target of the others.
struct NewSetFacts {
    std::string setId;
    std::string version;
    std::optional<std::string> dockerinitSha1;
};

}  // namespace

TransactionRunner::TransactionRunner(const Config& config, Services services) : config_(config), s_(std::move(services)) {}

void TransactionRunner::report(const std::string& state, unsigned percent, const std::string& message)
{
    if (s_.report)
        s_.report(state, percent, message);
}

Task<void> TransactionRunner::stopEngine()
{
    const milliseconds timeout = seconds(config_.docker.stopTimeoutSec);
    // The socket too: once it is gone no client can start the old engine
    // again mid-swap. Both jobs are enqueued before either is awaited, as
    // `systemctl stop docker.socket docker.service` does. The socket's job
    // comes first; when the service Requires= the socket (Docker's unit
    // does), that transaction already holds the service's stop and the second
    // call only joins it: awaited one after the other, it was one more job
    // wait inside the outage.
    auto stopped = s_.units.stopUnits(engineUnits(), timeout);  // GCC 12: no temporaries in a co_await
    co_await std::move(stopped);
}

Task<void> TransactionRunner::startEngine()
{
    const milliseconds timeout = seconds(config_.docker.startTimeoutSec);
    // Both jobs are enqueued before either is awaited, as `systemctl start
    // docker.socket docker.service` does: systemd starts the socket before the
    // service it activates, and the downtime holds one job wait, not two.
    auto started = s_.units.startUnits(engineUnits(), timeout);  // GCC 12: no temporaries in a co_await
    co_await std::move(started);
}

std::vector<std::string> TransactionRunner::engineUnits() const
{
    std::vector<std::string> units;
    if (!config_.docker.socketUnit.empty())
        units.push_back(config_.docker.socketUnit);  // first: see stopEngine
    units.push_back(config_.docker.service);
    return units;
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
                                          milliseconds timeout, std::vector<ContainerSummary> containersBack, bool runSmoke)
{
    // A rollback's check is part of rolling back: keep showing that state,
    // and say which engine is checked.
    const std::string state = runSmoke ? "checking" : "rolling-back";
    const std::string prefix = runSmoke ? "" : "checking the restored engine: ";
    HealthExpectations expect;
    expect.serviceUnit = config_.docker.service;
    expect.socketPath = config_.docker.socket.string();
    expect.expectedVersion = expectedVersion;
    expect.expectedInitSha1 = expectedInitSha1;
    expect.timeout = timeout;
    expect.grace = seconds(config_.docker.graceSec);
    if (runSmoke) {
        expect.smokeCommand = config_.docker.smokeCommand;
        // Cancel ends the new engine's check at its next probe (and the
        // transaction rolls back); the restored engine's check runs to its end.
        expect.cancelled = s_.cancelRequested;
    }
    expect.containersBack = std::move(containersBack);
    // Named, not a temporary inside co_await (GCC 12 destroys those twice; see async.hpp).
    HealthProgress progress = [this, &state, &prefix](const std::string& line) { report(state, 85, prefix + line); };
    co_await runHealthCheck(s_.engine, s_.units, s_.pool, expect, progress);
}

Task<void> TransactionRunner::restoreSet(const BackupSet& set, const std::vector<std::string>& names, const std::string& tx)
{
    co_await runOffLoop(s_.pool, [&]() {
        for (const auto& name : names) {
            const PayloadSpec* spec = config_.findPayload(name);
            const SetMember* member = set.member(name);
            const fs::path target = spec ? spec->path : (member ? member->target : fs::path());
            if (target.empty())
                continue;
            if (!member || !member->present) {
                removeDurably(target);
                continue;
            }
            const fs::path restore = restorePathFor(target, tx);
            std::error_code ec;
            if (!fs::exists(restore, ec)) {
                // Not staged before the stop (or already used by an earlier attempt): copy it now.
                copyFileDurably(set.fileOf(name), restore, spec ? spec->mode : 0755);
            }
            renameDurably(restore, target);
        }
        return 0;
    });
}

void TransactionRunner::removeLeftovers(const JournalBegin& begin)
{
    for (const auto& p : begin.payloads) {
        for (const auto& leftover : {stagedPathFor(p.target, begin.transaction), restorePathFor(p.target, begin.transaction),
                                     keptPathFor(p.target, begin.transaction)}) {
            try {
                removeDurably(leftover);
            } catch (const std::exception& e) {
                spdlog::warn("cannot remove {}: {}; remove it by hand", leftover.string(), e.what());
            }
        }
    }
}

Task<void> TransactionRunner::journalStep(const char* step)
{
    co_await runOffLoop(s_.pool, [this, step] {
        s_.journal.record(step);
        return 0;
    });
}

Task<void> TransactionRunner::removeLeftoversAndJournal(const JournalBegin& begin)
{
    co_await runOffLoop(s_.pool, [this, &begin] {
        removeLeftovers(begin);
        s_.journal.clear();
        return 0;
    });
}

Task<TransactionOutcome> TransactionRunner::rollBack(const std::string& tx, const BackupSet& set, const std::vector<std::string>& swapped,
                                                     const std::string& why, const std::string& resultIfRestored,
                                                     std::vector<ContainerSummary> containersBack)
{
    spdlog::error("transaction {}: {}; rolling back to backup set {} ({})", tx, why, set.id, set.version);
    report("rolling-back", 85, "rolling back to " + (set.version.empty() ? set.id : set.version));
    std::string failure;
    try {
        co_await journalStep("rolling-back");
        faultPoint("rollback-begin");
        co_await stopEngine();
        faultPoint("rollback-after-stop");
        for (const auto& name : swapped) {
            const PayloadSpec* spec = config_.findPayload(name);
            if (spec && ::link(spec->path.c_str(), keptPathFor(spec->path, tx).c_str()) != 0)
                spdlog::warn("cannot keep {} aside before restoring it: {}", spec->path.string(), std::strerror(errno));
        }
        co_await restoreSet(set, swapped, tx);
        faultPoint("rollback-after-restore");
        co_await startEngine();
        faultPoint("rollback-after-start");
        std::optional<std::string> initSha1;
        if (set.member("dockerinit") && set.member("dockerinit")->present)
            initSha1 = co_await runOffLoop(s_.pool, [&] { return sha1OfFile(set.fileOf("dockerinit")); });
        // The smoke command judges a new engine; the engine that ran before is
        // only checked for answering, so a broken smoke command cannot turn a
        // good rollback into "failed".
        co_await checkEngine(set.version, initSha1, seconds(config_.docker.healthTimeoutSec), containersBack, false);
    } catch (...) {
        failure = describeException(std::current_exception());
    }

    JournalBegin begin{tx, "", {}};
    for (const auto& p : config_.payloads)
        begin.payloads.push_back({p.name, p.path, {}, {}});
    if (failure.empty()) {
        co_await removeLeftoversAndJournal(begin);
        const std::string restored = "the previous engine" + (set.version.empty() ? std::string() : " (" + set.version + ")") +
                                     " was restored and Docker answers";
        co_return TransactionOutcome{resultIfRestored, why + "; " + restored, set.version};
    }

    spdlog::critical("transaction {}: rollback failed too: {}", tx, failure);
    std::string kept;
    try {
        // Hashing and copying the failed files: off the loop.
        std::optional<BackupSet> newSet = co_await runOffLoop(s_.pool, [&]() -> std::optional<BackupSet> {
            std::vector<std::pair<SetMember, fs::path>> files;
            for (const auto& name : swapped) {
                const PayloadSpec* spec = config_.findPayload(name);
                if (!spec)
                    continue;
                fs::path link = keptPathFor(spec->path, tx);
                std::error_code ec;
                bool present = fs::exists(link, ec);
                files.push_back({SetMember{name, spec->path, present, present ? sha256OfFile(link) : ""}, link});
            }
            if (files.empty())
                return std::nullopt;
            return s_.backups.keepFiles(files, "");
        });
        if (newSet)
            kept = " the failed new files are kept in backup " + newSet->id + " (" + newSet->dir.string() + "),";
    } catch (const std::exception& e) {
        kept = " the failed new files could not be kept (" + std::string(e.what()) + "),";
    }
    co_await removeLeftoversAndJournal(begin);
    co_return TransactionOutcome{
        "failed",
        why + "; the rollback failed too: " + failure + ". Nothing more is tried:" + kept + " the previous set is in backup " + set.id +
            " (" + set.dir.string() + "). Check `systemctl status " + config_.docker.service + "` and `journalctl -u " +
            config_.docker.service + "`, then copy the files of a backup over the targets by hand or call Rollback",
        ""};
}

Task<TransactionOutcome> TransactionRunner::run(TransactionPlan plan)
{
    const std::string tx = plan.id;
    const bool isRollback = plan.kind == "rollback";
    JournalBegin begin{tx, plan.kind, {}};
    for (const auto& p : plan.payloads)
        begin.payloads.push_back({p.spec->name, p.spec->path, stagedPathFor(p.spec->path, tx), p.expectedSha256});

    // --- staging: everything here happens while Docker still runs, so the downtime holds no copying.
    std::vector<StagedFile> staged;
    NewSetFacts facts;
    BackupStore::BackUpResult backup;
    std::string refusal;
    report("staging", 10, "copying " + std::to_string(plan.payloads.size()) + " payload(s) beside their targets");
    try {
        co_await runOffLoop(s_.pool, [&] {
            s_.journal.begin(begin);
            return 0;
        });
        faultPoint("after-begin");
        staged = co_await runOffLoop(s_.pool, [&] {
            std::vector<StagedFile> out;
            for (auto& p : plan.payloads) {
                if (p.removeTarget)
                    continue;
                try {
                    out.push_back(stageCopy(p.source.fd.get(), p.source.st, p.spec->name, p.spec->path, p.spec->mode, tx, p.expectedSha256));
                } catch (const AgentError& e) {
                    throw AgentError(e.kind(), std::string(e.what()) + " (source " + p.source.path + ")");
                }
            }
            return out;
        });
        faultPoint("after-stage");
        report("staging", 30, "learning the new engine's version");
        facts = co_await runOffLoop(s_.pool, [&] {
            NewSetFacts f;
            std::vector<SetMember> members;
            auto stagedOf = [&](const std::string& name) -> const StagedFile* {
                for (const auto& sf : staged)
                    for (const auto& p : plan.payloads)
                        if (p.spec->name == name && sf.target == p.spec->path)
                            return &sf;
                return nullptr;
            };
            auto removed = [&](const std::string& name) {
                return std::any_of(plan.payloads.begin(), plan.payloads.end(),
                                   [&](const PlannedPayload& p) { return p.spec->name == name && p.removeTarget; });
            };
            // Which file each payload of the new set is, on disk.
            auto fileOf = [&](const PayloadSpec& spec) -> std::optional<fs::path> {
                if (const StagedFile* sf = stagedOf(spec.name))
                    return sf->staged;
                std::error_code ec;
                if (removed(spec.name) || !fs::is_regular_file(spec.path, ec))
                    return std::nullopt;
                return spec.path;
            };
            for (const auto& spec : config_.payloads) {
                auto file = fileOf(spec);
                const StagedFile* sf = stagedOf(spec.name);
                members.push_back({spec.name, spec.path, file.has_value(), !file ? "" : sf ? sf->sha256 : sha256OfFile(*file)});
            }
            f.setId = setIdOf(members);
            const PayloadSpec& engineSpec = config_.enginePayload();
            auto engineFile = fileOf(engineSpec);
            if (isRollback && !plan.knownVersion.empty())
                f.version = plan.knownVersion;
            else if (engineFile && !engineSpec.versionArgs.empty())
                f.version = s_.probeVersion(*engineFile, engineSpec.versionArgs);
            if (const PayloadSpec* init = config_.findPayload("dockerinit")) {
                if (auto initFile = fileOf(*init)) {
                    const StagedFile* sf = stagedOf(init->name);
                    f.dockerinitSha1 = sf ? sf->sha1 : sha1OfFile(*initFile);
                    // Docker 1.10 runs only the dockerinit whose SHA-1 was compiled into it.
                    if (config_.docker.dockerinitPairing && engineFile && !fileContainsText(*engineFile, *f.dockerinitSha1))
                        throw AgentError(ErrorKind::PayloadRejected,
                                         "dockerinit pairing: the engine " + engineSpec.path.string() + " of the new set does not embed the SHA-1 " +
                                             *f.dockerinitSha1 + " of its dockerinit " + init->path.string() +
                                             "; Docker 1.10 would refuse to run it. Upgrade docker and dockerinit together from the same build, "
                                             "or set dockerinit_pairing = false for engines without dockerinit");
                }
            }
            return f;
        });
        if (plan.dryRun || s_.cancelRequested()) {
            co_await removeLeftoversAndJournal(begin);
            if (s_.cancelRequested())
                co_return TransactionOutcome{"cancelled", "cancelled by request before anything changed; Docker was not interrupted", ""};
            co_return TransactionOutcome{"success", "dry run: verified and staged; this set would install engine version " + facts.version +
                                                        "; nothing was changed",
                                         ""};
        }
        report("staging", 40, "backing up the installed set");
        backup = co_await runOffLoop(s_.pool, [&] {
            return s_.backups.backUp(config_.payloads, [&](const fs::path& f) {
                try {
                    return s_.probeVersion(f, config_.enginePayload().versionArgs);
                } catch (const std::exception&) {
                    return std::string();
                }
            });
        });
        if (backup.set.id == facts.setId) {
            if (backup.created)
                co_await runOffLoop(s_.pool, [&] {
                    s_.backups.remove(backup.set.id);
                    return 0;
                });
            throw AgentError(ErrorKind::PayloadRejected, "the requested engine set is already installed (set " + facts.setId + "); nothing to do");
        }
        // Stage the restore copies too, so that a rollback needs no copying and no free space.
        co_await runOffLoop(s_.pool, [&] {
            for (const auto& p : plan.payloads) {
                const SetMember* m = backup.set.member(p.spec->name);
                if (m && m->present)
                    copyFileDurably(backup.set.fileOf(p.spec->name), restorePathFor(p.spec->path, tx), p.spec->mode);
            }
            s_.journal.record("backed-up", backup.set.id);
            if (backup.created)
                s_.journal.record("backup-new", backup.set.id);  // so a recovery can drop it like a rollback does
            return 0;
        });
        faultPoint("after-backup");
    } catch (...) {
        refusal = describeException(std::current_exception());
    }
    if (!refusal.empty()) {
        co_await runOffLoop(s_.pool, [&] {
            removeLeftovers(begin);
            if (backup.created && backup.set.id != facts.setId)
                s_.backups.remove(backup.set.id);
            try {
                s_.journal.clear();
            } catch (const std::exception& e) {
                spdlog::error("cannot remove the journal {}: {}", s_.journal.file().string(), e.what());
            }
            return 0;
        });
        co_return TransactionOutcome{"rejected", refusal + "; nothing was changed and Docker was not interrupted", ""};
    }

    if (s_.cancelRequested()) {
        co_await runOffLoop(s_.pool, [&] {
            removeLeftovers(begin);
            s_.journal.clear();
            if (backup.created)
                s_.backups.remove(backup.set.id);
            return 0;
        });
        co_return TransactionOutcome{"cancelled", "cancelled by request before Docker was stopped; nothing was changed", ""};
    }

    auto containersBack = co_await containersToBringBack();

    // --- stopping, swapping, starting, checking: each step journalled before it takes effect.
    std::vector<std::string> swapped;
    std::string failure;
    bool cancelled = false;
    try {
        report("stopping", 50, "stopping " + config_.docker.service);
        // One journal write (one fdatasync), still before the outage,
        // announces the stop and every payload's rename: the swap inside the
        // outage is then only renames. A recovery restores every payload
        // named here from the backup; one not renamed yet gets back the bytes
        // it already has, as a rollback after a failure before the swap does.
        std::vector<JournalStep> announced{{"stopping", ""}};
        for (const auto& p : plan.payloads)
            announced.push_back({"swap", p.spec->name});
        co_await runOffLoop(s_.pool, [&] {
            s_.journal.recordAll(announced);
            return 0;
        });
        faultPoint("before-stop");
        co_await stopEngine();
        faultPoint("after-stop");
        report("swapping", 60, "renaming the staged files over their targets");
        swapped = co_await runOffLoop(s_.pool, [&] {
            // Order: the journal announced every rename above; the staged
            // files were fsync'ed when they were staged; renameDurably fsyncs
            // each folder after its rename, all before "committed".
            std::vector<std::string> names;
            for (std::size_t i = 0; i < plan.payloads.size(); ++i) {
                const auto& p = plan.payloads[i];
                if (p.removeTarget)
                    removeDurably(p.spec->path);
                else
                    renameDurably(stagedPathFor(p.spec->path, tx), p.spec->path);
                names.push_back(p.spec->name);
                faultPoint(i == 0 ? "after-first-rename" : "after-rename");
            }
            return names;
        });
        faultPoint("after-swap");
        report("starting", 70, "starting " + config_.docker.service);
        co_await startEngine();
        faultPoint("after-start");
        if (s_.cancelRequested()) {
            cancelled = true;
            failure = "cancelled by request after the swap";
        } else {
            report("checking", 80, "checking the new engine on " + config_.docker.socket.string());
            co_await checkEngine(facts.version, facts.dockerinitSha1, plan.healthTimeout, containersBack, true);
            faultPoint("after-check");
        }
    } catch (const HealthCheckCancelled& e) {
        cancelled = true;
        failure = e.what();
    } catch (...) {
        failure = describeException(std::current_exception());
    }

    if (failure.empty()) {
        report("checking", 95, "committing");
        co_await journalStep("committed");
        faultPoint("after-commit");
        co_await removeLeftoversAndJournal(begin);
        try {
            co_await runOffLoop(s_.pool, [&] {
                s_.backups.prune(config_.agent.keepBackups, backup.set.id);
                return 0;
            });
        } catch (const std::exception& e) {
            spdlog::warn("cannot prune old backups in {}: {}", s_.backups.dir().string(), e.what());
        }
        co_return TransactionOutcome{"success", "", facts.version};
    }
    if (swapped.empty())
        for (const auto& p : plan.payloads)
            swapped.push_back(p.spec->name);  // a crash-free failure before the swap: restoring is harmless
    const std::string resultIfRestored = cancelled ? "cancelled" : "rolled-back";
    auto outcome = co_await rollBack(tx, backup.set, swapped, failure, resultIfRestored, containersBack);
    // A transaction that rolled back adds no backup: the set it saved is the one installed again.
    if (outcome.result != "failed" && backup.created)
        s_.backups.remove(backup.set.id);
    co_return outcome;
}

Task<TransactionOutcome> TransactionRunner::recover(JournalContents journal)
{
    const JournalBegin& begin = journal.begin;
    const std::string tx = begin.transaction;
    const std::string where = "transaction " + tx + " (" + begin.kind + ") was interrupted at step '" + journal.lastStep() + "'";
    spdlog::warn("{}; recovering", where);

    if (!journal.has("backed-up") || journal.has("committed")) {
        // Nothing outside the hidden staged files had changed, or the commit was already on disk.
        removeLeftovers(begin);
        s_.journal.clear();
        // The message is shown in Progress and Finished, so a crash after the
        // commit is reported too (it used to read "success: done").
        if (journal.has("committed"))
            co_return TransactionOutcome{"success", where + " after the commit; the new engine stays installed and the staged copies were removed", ""};
        co_return TransactionOutcome{"rolled-back", where + " before anything changed; the staged copies were removed", ""};
    }
    auto set = s_.backups.find(journal.detailOf("backed-up"));
    if (!set) {
        removeLeftovers(begin);
        s_.journal.clear();
        co_return TransactionOutcome{"failed", where + ", and its backup set " + journal.detailOf("backed-up") +
                                                   " is missing from " + s_.backups.dir().string() +
                                                   "; check the files of every payload by hand and start " + config_.docker.service,
                                     ""};
    }
    std::vector<std::string> swapped;
    for (const auto& step : journal.steps)
        if (step.step == "swap" && std::find(swapped.begin(), swapped.end(), step.detail) == swapped.end())
            swapped.push_back(step.detail);
    std::vector<ContainerSummary> none;  // recovery cannot know what ran before the crash
    // Like a transaction that rolled back, a recovered one adds no backup: the
    // set it saved is the one installed again.
    const bool backupIsNew = journal.has("backup-new");
    if (!journal.has("stopping")) {
        removeLeftovers(begin);
        s_.journal.clear();
        if (backupIsNew)
            s_.backups.remove(set->id);
        co_return TransactionOutcome{"rolled-back", where + " before Docker was stopped; nothing had changed", ""};
    }
    const std::string resultIfRestored = "rolled-back";
    auto outcome = co_await rollBack(tx, *set, swapped, where, resultIfRestored, none);
    if (outcome.result != "failed" && backupIsNew)
        s_.backups.remove(set->id);
    co_return outcome;
}

}  // namespace armdock
