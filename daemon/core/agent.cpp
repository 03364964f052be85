#include "agent.hpp"

#include <malloc.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "backup_store.hpp"
#include "dropin.hpp"
#include "durable_fs.hpp"
#include "elf_check.hpp"
#include "engine_monitor.hpp"
#include "engine_version.hpp"
#include "errors.hpp"
#include "journal.hpp"
#include "logging.hpp"
#include "source_verifier.hpp"

namespace armdock {

namespace fs = std::filesystem;
using std::chrono::seconds;

namespace {

std::string newTransactionId()
{
    char stamp[32];
    std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", std::gmtime(&now));
    static std::mt19937 random{std::random_device{}()};
    char suffix[8];
    std::snprintf(suffix, sizeof suffix, "%04x", static_cast<unsigned>(random() & 0xffff));
    return std::string(stamp) + "-" + suffix;
}

}  // namespace

struct Agent::Impl {
    boost::asio::io_context& io;
    boost::asio::thread_pool& pool;
    UnitControl& units;
    EngineApi& engine;
    Config config;
    AgentStatus status;
    std::vector<AgentObserver*> observers;
    std::shared_ptr<BackupStore> backups;  // shared: warmUp reads it off the loop while a reload may replace it
    std::unique_ptr<TransactionJournal> journal;
    std::unique_ptr<TransactionRunner> runner;
    std::unique_ptr<EngineMonitor> monitor;
    VersionProbe probe = [](const fs::path& binary, const std::vector<std::string>& args) {
        return learnEngineVersion(binary, args, std::chrono::seconds(10));
    };
    bool running = false;
    bool cancelRequested = false;
    bool warm = false;  // the installed set is described (warmUp done)
    unsigned transactionsStarted = 0;
    std::string installedSetId;
    // A restore failed part way: the journal stays until a recovery makes the set whole.
    std::optional<std::string> pendingRestoreOf;
    std::vector<fs::path> dropinsInFlight;
    bool reloading = false;  // reload() is reading the config or the drop-in folder off the loop
    bool stopping = false;   // refuseNewTransactions(): the service drains and stops
    std::optional<JournalContents> interrupted;  // found by startUp, recovered by recoverInterrupted
    bool recovering = false;                     // a recovery runs: it cannot be cancelled

    Impl(boost::asio::io_context& io_, boost::asio::thread_pool& pool_, UnitControl& units_, EngineApi& engine_, Config config_)
        : io(io_), pool(pool_), units(units_), engine(engine_), config(std::move(config_))
    {
        rebuildStores();
        EngineMonitor::Hooks hooks;
        hooks.transactionRunning = [this] { return running; };
        hooks.healthChanged = [this](bool healthy, const std::string& reason) {
            status.healthy = healthy;
            notify({"Healthy"});
            for (auto* o : observers)
                o->healthChanged(healthy, reason);
        };
        hooks.checked = [this](std::uint64_t usec) {
            status.lastHealthCheckUsec = usec;
            notify({"LastHealthCheck"});
        };
        hooks.restarted = [this](unsigned restarts) {
            status.engineRestarts = restarts;
            notify({"EngineRestarts"});
        };
        hooks.gaveUp = [this](const std::string& why) { setProgress(AgentState::Failed, 0, why); };
        monitor = std::make_unique<EngineMonitor>(io, engine, units, monitorSettings(), std::move(hooks));
    }

    MonitorSettings monitorSettings() const
    {
        MonitorSettings m;
        m.interval = seconds(config.docker.monitorIntervalSec);
        m.failuresBeforeRestart = config.docker.monitorFailures;
        m.maxRestartsPerHour = config.docker.maxRestartsPerHour;
        m.service = config.docker.service;
        m.restartTimeout = seconds(config.docker.stopTimeoutSec + config.docker.startTimeoutSec);
        m.socketPath = config.docker.socket.string();
        m.expectContainersBack = config.docker.expectContainersBack;
        m.healthTimeout = seconds(config.docker.healthTimeoutSec);
        return m;
    }

    fs::path lastResultFile() const { return config.agent.stateDir / "last-result.json"; }
    fs::path rejectedDir() const { return config.agent.stateDir / "rejected"; }

    void rebuildStores()
    {
        backups = std::make_shared<BackupStore>(config.agent.stateDir);
        journal = std::make_unique<TransactionJournal>(config.agent.stateDir);
        TransactionRunner::Services services{pool, units, engine, *backups, *journal,
                                             [this](const fs::path& b, const std::vector<std::string>& a) { return probe(b, a); },
                                             [this](AgentState s, unsigned p, const std::string& m) { setProgress(s, p, m); },
                                             [this] { return cancelRequested; }};
        runner = std::make_unique<TransactionRunner>(config, std::move(services));
    }

    void notify(const std::vector<std::string>& names)
    {
        for (auto* o : observers)
            o->propertiesChanged(names);
    }

    void setProgress(AgentState state, unsigned percent, const std::string& message)
    {
        std::vector<std::string> changed;
        if (status.state != state) {
            status.state = state;
            changed.push_back("State");
        }
        if (status.percent != percent || status.message != message) {
            status.percent = percent;
            status.message = message;
            changed.push_back("Progress");
        }
        LogContext::set(status.transaction, str(status.state));
        spdlog::info("{} {}%: {}", state, percent, message);
        if (!changed.empty())
            notify(changed);
    }

    void begin(const std::string& tx)
    {
        running = true;
        ++transactionsStarted;
        cancelRequested = false;
        status.transaction = tx;
        notify({"Transaction"});
        setProgress(AgentState::Verifying, 5, "sources verified; hashing and copying");
    }

    // Writes (and fsyncs) last-result.json for the outcome: what LastResult,
    // LastError and CurrentVersion will say after finish().
    void saveLastResult(const std::string& tx, const TransactionOutcome& outcome)
    {
        nlohmann::json j{{"transaction", tx}, {"result", toString(outcome.result)}, {"error", outcome.result == TransactionResult::Success ? "" : outcome.message},
                         {"version", outcome.version.empty() ? status.currentVersion : outcome.version}};
        try {
            writeFileDurably(lastResultFile(), j.dump() + "\n", 0600);
        } catch (const std::exception& e) {
            spdlog::error("cannot save the last result to {}: {}", lastResultFile().string(), e.what());
        }
    }

    // Temporaries only a crash leaves in the state folder (the payload
    // folders' are recovery's job): a backup set half made (.incoming-*) or
    // half removed (.removing-*), a manifest or last-result.json half
    // rewritten. Called at start, before any transaction can write them.
    // (Found by tests/integration/test_crash_recovery: a SIGKILL while the
    // installed set was being backed up left a whole engine copy behind.)
    void removeCrashTemporaries()
    {
        auto isTemporary = [](const std::string& name) {
            return name.starts_with(".incoming-") || name.starts_with(".removing-") || name.starts_with(".manifest.json.tmp-") ||
                   name.starts_with(".last-result.json.tmp-");
        };
        std::error_code ec;
        std::vector<fs::path> doomed;
        for (const auto& folder : {config.agent.stateDir, backups->dir()})
            for (const auto& e : fs::directory_iterator(folder, ec))
                if (isTemporary(e.path().filename().string()))
                    doomed.push_back(e.path());
        for (const auto& set : fs::directory_iterator(backups->dir(), ec))
            if (set.is_directory(ec) && !set.path().filename().string().starts_with("."))
                for (const auto& e : fs::directory_iterator(set.path(), ec))
                    if (isTemporary(e.path().filename().string()))
                        doomed.push_back(e.path());
        for (const auto& path : doomed) {
            spdlog::warn("removing {}, left by an earlier crash", path.string());
            fs::remove_all(path, ec);
            if (ec)
                spdlog::error("cannot remove {}: {}; remove it by hand", path.string(), ec.message());
        }
    }

    void loadLastResult()
    {
        try {
            auto j = nlohmann::json::parse(readSmallFile(lastResultFile()));
            status.transaction = j.value("transaction", "");
            status.lastResult = fromString<TransactionResult>(j.value("result", "")).value_or(TransactionResult::None);
            status.lastError = j.value("error", "");
            status.currentVersion = j.value("version", "");
        } catch (const std::exception&) {
            // No earlier result (first start) or an unreadable one: start from "none".
        }
    }

    // `saved`: last-result.json was already written (off the loop) for this outcome.
    void finish(const std::string& tx, const TransactionOutcome& outcome, bool saved = false)
    {
        if (!saved)
            saveLastResult(tx, outcome);
        status.transaction = tx;
        status.lastResult = outcome.result;
        status.lastError = outcome.result == TransactionResult::Success ? "" : outcome.message;
        if (!outcome.version.empty())
            status.currentVersion = outcome.version;
        running = false;
        cancelRequested = false;
        const bool failed = outcome.result == TransactionResult::Failed;
        const std::string line = outcome.result == TransactionResult::Success ? (outcome.message.empty() ? "done" : outcome.message) : outcome.message;
        setProgress(failed ? AgentState::Failed : AgentState::Idle, failed ? 0 : 100, str(outcome.result) + ": " + line);
        if (outcome.result == TransactionResult::Success)
            spdlog::info("transaction {} finished: success, engine {}", tx, status.currentVersion);
        else
            spdlog::error("transaction {} finished: {}: {}", tx, outcome.result, outcome.message);
        notify({"Transaction", "CurrentVersion", "LastResult", "LastError"});
        for (auto* o : observers)
            o->finished(tx, outcome.result, status.lastResult == TransactionResult::Success ? line : status.lastError);
        LogContext::set("", str(status.state));
    }

    Task<void> refreshInstalledSet()
    {
        try {
            // A copy: a Reload may replace the config while a pool thread hashes.
            auto describe = [payloads = config.payloads] { return setIdOf(describeInstalledSet(payloads)); };
            installedSetId = co_await runOffLoop(pool, std::move(describe));
        } catch (const std::exception& e) {
            spdlog::warn("cannot describe the installed engine set: {}", e.what());
        }
    }

    // `pickNext`: a Rollback() that chose its set: a damaged set is skipped for the next healthy one.
    Task<void> runAndFinish(TransactionPlan plan, bool pickNext)
    {
        const std::string tx = plan.id;
        TransactionOutcome outcome;
        std::string skipped;
        try {
            outcome = co_await runner->run(std::move(plan));
            while (pickNext && !outcome.damagedBackup.empty()) {
                skipped += outcome.message + "; ";
                auto next = newestRollbackCandidate();
                if (!next)
                    break;
                spdlog::warn("transaction {}: backup set {} is damaged; rolling back to {} instead", tx, outcome.damagedBackup, next->id);
                outcome = co_await runner->run(planRollbackTo(*next, tx));
            }
        } catch (const std::exception& e) {
            outcome = {TransactionResult::Failed, std::string("internal error: ") + e.what() + "; check the journal of armdock-agent", ""};
        }
        if (!skipped.empty() && outcome.damagedBackup.empty())
            outcome.message = outcome.result == TransactionResult::Success ? "skipped: " + skipped : skipped + outcome.message;
        co_await settle(tx, outcome);
    }

    Task<void> recoverAndFinish(JournalContents pending)
    {
        const std::string tx = pending.begin.transaction;
        // The drop-ins the interrupted transaction applied: settled by this outcome, never applied again.
        dropinsInFlight = pending.begin.dropins;
        TransactionOutcome outcome;
        recovering = true;
        try {
            outcome = co_await runner->recover(std::move(pending));
        } catch (const std::exception& e) {
            outcome = {TransactionResult::Failed, std::string("recovery failed: ") + e.what(), ""};
        }
        recovering = false;
        co_await settle(tx, outcome);
    }

    // After run() or recover(): what is installed now, the drop-ins, the last result.
    Task<void> settle(const std::string& tx, TransactionOutcome outcome)
    {
        if (outcome.journalKept)
            pendingRestoreOf = pendingSetId();
        else
            pendingRestoreOf.reset();
        co_await refreshInstalledSet();
        warm = true;
        // Moving drop-ins and writing last-result.json fsync: off the loop.
        co_await runOffLoop(pool, [&] {
            settleDropins(outcome);
            saveLastResult(tx, outcome);
            return 0;
        });
        finish(tx, outcome, true);
        malloc_trim(0);  // what the transaction freed goes back before the agent idles again
    }

    void settleDropins(const TransactionOutcome& outcome)
    {
        for (const auto& file : dropinsInFlight) {
            std::error_code ec;
            if (!fs::exists(fs::symlink_status(file, ec)))
                continue;  // settled before a crash, or taken away by the operator
            try {
                if (outcome.result == TransactionResult::Success)
                    removeDurably(file);
                else
                    moveAside(file, rejectedDir(), "transaction " + status.transaction + " " + str(outcome.result) + ": " + outcome.message);
            } catch (const std::exception& e) {
                spdlog::error("cannot clear the drop-in {}: {}", file.string(), e.what());
            }
        }
        dropinsInFlight.clear();
    }

    void ensureIdle() const
    {
        if (stopping)
            throw AgentError(ErrorKind::Busy, "armdock-agent is stopping; call again once it has started again");
        if (reloading)
            throw AgentError(ErrorKind::Busy, "a reload is re-reading the config and the drop-in folder; retry in a moment");
        if (running)
            throw AgentError(ErrorKind::Busy, "transaction " + status.transaction + " is running (state " + str(status.state) +
                                                  "); wait for its Finished signal or call Cancel");
    }

    SourceRules rules() const { return SourceRules{0, hostElfMachine()}; }

    // `descriptors`: UpgradeFds's open sources; `files` then holds their labels.
    std::string startUpgrade(const std::map<std::string, std::string>& files, const std::map<std::string, OptionValue>& options,
                             std::map<std::string, UniqueFd>* descriptors = nullptr)
    {
        launch(planUpgrade(files, options, descriptors));
        return status.transaction;
    }

    // The cheap checks of an upgrade (throws AgentError before anything changed).
    // `signatureOrigins`: where a signature came from when not from the option (a drop-in's NAME.minisig).
    TransactionPlan planUpgrade(const std::map<std::string, std::string>& files, const std::map<std::string, OptionValue>& options,
                                std::map<std::string, UniqueFd>* descriptors, const std::map<std::string, std::string>& signatureOrigins = {})
    {
        ensureIdle();
        ensureSetWhole();
        UpgradeRequest request =
            parseUpgradeRequest(files, options, config, descriptors ? SourceForm::Descriptors : SourceForm::Paths);
        TransactionPlan plan;
        plan.id = newTransactionId();
        plan.kind = TransactionKind::Upgrade;
        plan.dryRun = request.dryRun;
        plan.healthTimeout = seconds(request.healthTimeoutSec.value_or(config.docker.healthTimeoutSec));
        std::optional<TrustedKeys> keys;  // read once, when a signature is given or required
        for (const auto& [name, path] : request.files) {
            PlannedPayload p;
            p.spec = config.findPayload(name);
            p.source = descriptors ? checkOpenedSource(name, path, std::move(descriptors->at(name)), rules())
                                   : openAndCheckSource(name, path, rules());
            auto digest = request.sha256.find(name);
            if (digest != request.sha256.end())
                p.expectedSha256 = digest->second;
            p.signature = checkSignature(name, request, signatureOrigins, keys);
            plan.payloads.push_back(std::move(p));
        }
        return plan;
    }

    // The half of a payload's signature that needs no byte of its file
    // (core/payload_signature.hpp); nullopt when it has none and none is required.
    std::optional<AcceptedSignature> checkSignature(const std::string& name, const UpgradeRequest& request,
                                                    const std::map<std::string, std::string>& origins, std::optional<TrustedKeys>& keys) const
    {
        const auto text = request.signatures.find(name);
        if (text == request.signatures.end()) {
            if (config.trust.requireSignature)
                throw AgentError(ErrorKind::PayloadRejected,
                                 "payload " + name + " has no signature, and [trust] require_signature is on in " + config.sourceFile.string() +
                                     ": sign it with `minisign -S -m FILE` and give FILE.minisig (armdockctl upgrade sends the one beside the "
                                     "file by itself; the option signature." + name + " for D-Bus callers; " + name +
                                     ".minisig beside it in the drop-in folder)");
            return std::nullopt;
        }
        if (!keys)
            keys = readTrustedKeys(config.trust.keys);
        const auto origin = origins.find(name);
        const PayloadSpec* spec = config.findPayload(name);
        return acceptSignature(name, text->second, origin != origins.end() ? origin->second : "option signature." + name, *keys,
                               config.trust, spec && spec->engine, request.allowDowngrade);
    }

    DiversionRecord diversionRecord() const { return DiversionRecord(config.agent.stateDir / "dpkg-diversions.json"); }

    // A start with no journal to recover: the diversions that a transaction's
    // end could not reconcile (a crash just after it) are, off the loop; no
    // transaction starts meanwhile (they answer Busy).
    Task<void> reconcileDiversionsAtStart()
    {
        const DiversionRecord record = diversionRecord();
        std::error_code ec;
        if (!fs::exists(record.file(), ec))
            co_return;
        running = true;
        std::vector<std::string> said;
        co_await runOffLoop(pool, [&] {
            try {
                said = reconcileDiversions(config.agent.dpkgRoot, record);
            } catch (const std::exception& e) {
                said.push_back(e.what());
            }
        });
        running = false;
        for (const auto& line : said)
            spdlog::info("at start: {}", line);
    }

    std::string startRelease()
    {
        ensureIdle();
        ensureSetWhole();
        const DiversionRecord record = diversionRecord();
        std::vector<AgentDiversion> all;
        try {
            all = record.load();  // a few hundred bytes
        } catch (const std::exception& e) {
            throw AgentError(ErrorKind::Failed, e.what());
        }
        TransactionPlan plan;
        plan.id = newTransactionId();
        plan.kind = TransactionKind::Upgrade;
        plan.release = true;
        plan.healthTimeout = seconds(config.docker.healthTimeoutSec);
        for (const auto& d : all) {
            const PayloadSpec* spec = config.findPayload(d.payload);
            std::error_code ec;
            if (!spec || spec->path != d.target || !fs::is_regular_file(fs::symlink_status(distribPath(d), ec)))
                continue;  // not configured any more, or its package was removed with its TARGET.distrib
            PlannedPayload p;
            p.spec = spec;
            p.source = openAndCheckSource(d.payload, distribPath(d).string(), rules());
            plan.payloads.push_back(std::move(p));
        }
        if (plan.payloads.empty())
            throw AgentError(ErrorKind::InvalidArgument, "nothing to release: the agent has diverted no packaged file of a configured payload (" +
                                                             record.file().string() + " lists none)");
        launch(std::move(plan));
        return status.transaction;
    }

    // UpgradeFds: each source is labelled fd:NAME in messages unless source.NAME says which path it is.
    std::string startUpgradeFds(std::map<std::string, UniqueFd> descriptors, const std::map<std::string, OptionValue>& options)
    {
        std::map<std::string, std::string> labels;
        for (const auto& [name, fd] : descriptors)
            labels[name] = "fd:" + name;
        return startUpgrade(labels, options, &descriptors);
    }

    // Why Rollback() would not pick this set; "" when it would.
    std::string notPickedBecause(const BackupSet& set) const
    {
        if (set.id == installedSetId)
            return "installed";
        if (set.health != SetHealth::Healthy)
            return std::string(toString(set.health)) + (set.health == SetHealth::Unknown ? ": never checked on this host" : "");
        auto lacking = set.lacking(config.payloads);
        if (!lacking.empty())
            return "incomplete: lacks payload " + lacking.front();
        return "";
    }

    std::optional<BackupSet> newestRollbackCandidate() const
    {
        for (auto& set : backups->list())
            if (notPickedBecause(set).empty())
                return set;
        return std::nullopt;
    }

    // The backup set a kept journal is restoring.
    std::string pendingSetId() const
    {
        try {
            auto pending = journal->load();
            return pending ? pending->detailOf(JournalStepKind::BackedUp) : std::string();
        } catch (const std::exception&) {
            return "";
        }
    }

    void ensureSetWhole() const
    {
        if (pendingRestoreOf)
            throw AgentError(ErrorKind::Busy, "the files on disk may be a mixed set: restoring backup set " + *pendingRestoreOf +
                                                  " did not finish (journal " + journal->file().string() + "). Run `armdockctl rollback --to " +
                                                  *pendingRestoreOf + "` to finish it first");
    }

    void ensureDescribed() const
    {
        if (!warm || installedSetId.empty())
            throw AgentError(ErrorKind::Busy, "the agent is still describing the installed engine set; retry in a moment");
    }

    TransactionPlan planRollbackTo(const BackupSet& chosen, const std::string& tx)
    {
        TransactionPlan plan;
        plan.id = tx;
        plan.kind = TransactionKind::Rollback;
        plan.knownVersion = chosen.version;
        plan.backupId = chosen.id;
        plan.reinstall = chosen.id == installedSetId;
        plan.healthTimeout = seconds(config.docker.healthTimeoutSec);
        for (const auto& spec : config.payloads) {
            PlannedPayload p;
            p.spec = &spec;
            const SetMember* member = chosen.member(spec.name);
            std::error_code ec;
            if (!member) {
                continue;  // rollbackTo refuses an incomplete set; never remove what a set does not know
            } else if (member->isLink()) {
                p.linkTarget = member->linkTarget;
                p.expectedSha256 = member->sha256;
            } else if (member->present) {
                p.source = openAndCheckSource(spec.name, chosen.fileOf(spec.name).string(), rules());
                p.expectedSha256 = member->sha256;  // the backup is checked as it is staged
            } else if (fs::exists(fs::symlink_status(spec.path, ec))) {
                p.removeTarget = true;
            } else {
                continue;
            }
            plan.payloads.push_back(std::move(p));
        }
        return plan;
    }

    // A kept journal: Rollback and RollbackTo its set finish its restore first.
    std::string resumeRecovery()
    {
        std::optional<JournalContents> pending = journal->load();
        if (!pending) {
            pendingRestoreOf.reset();
            return {};
        }
        begin(pending->begin.transaction);
        setProgress(AgentState::RollingBack, 50, "finishing the restore of backup set " + pending->detailOf(JournalStepKind::BackedUp));
        boost::asio::co_spawn(io, recoverAndFinish(std::move(*pending)), boost::asio::detached);
        return status.transaction;
    }

    std::string startRollback()
    {
        ensureIdle();
        if (pendingRestoreOf)
            if (std::string tx = resumeRecovery(); !tx.empty())
                return tx;
        auto sets = backups->list();
        if (!sets.empty())
            ensureDescribed();
        auto chosen = newestRollbackCandidate();
        if (!chosen) {
            std::string why;
            for (const auto& set : sets)
                why += (why.empty() ? "" : ", ") + set.id + " (" + notPickedBecause(set) + ")";
            throw AgentError(ErrorKind::NoBackup,
                             "no healthy, complete backup set in " + backups->dir().string() + " differs from the installed engine set" +
                                 (installedSetId.empty() ? std::string() : " (" + installedSetId + ")") +
                                 (why.empty() ? "; backups are made by each upgrade" : ": " + why + "; choose one with `armdockctl rollback --to ID`"));
        }
        spdlog::info("rolling back to backup set {} ({})", chosen->id, chosen->version);
        launch(planRollbackTo(*chosen, newTransactionId()), true);
        return status.transaction;
    }

    std::string startRollbackTo(const std::string& id)
    {
        ensureIdle();
        if (pendingRestoreOf && *pendingRestoreOf == id)
            if (std::string tx = resumeRecovery(); !tx.empty())
                return tx;
        ensureSetWhole();
        auto chosen = backups->find(id);
        if (!chosen)
            throw AgentError(ErrorKind::NoBackup, "there is no backup set " + id + " in " + backups->dir().string() +
                                                      "; `armdockctl backups` lists them");
        if (auto lacking = chosen->lacking(config.payloads); !lacking.empty())
            throw AgentError(ErrorKind::PayloadRejected, "backup set " + id + " is incomplete: it has no payload " + lacking.front() +
                                                             " (it was made under another config); choose another set");
        ensureDescribed();
        spdlog::info("rolling back to backup set {} ({}, {}) as asked", chosen->id, chosen->version, toString(chosen->health));
        launch(planRollbackTo(*chosen, newTransactionId()), false);
        return status.transaction;
    }

    void launch(TransactionPlan plan, bool pickNext = false)
    {
        begin(plan.id);
        boost::asio::co_spawn(io, runAndFinish(std::move(plan), pickNext), boost::asio::detached);
    }

    // Observers hear of every reload's end, whatever its outcome.
    Task<std::string> reload()
    {
        std::exception_ptr error;
        std::string transaction;
        try {
            transaction = co_await reloadConfigAndDropins();
        } catch (...) {
            error = std::current_exception();
        }
        for (auto* o : observers)
            o->reloaded();
        if (error)
            std::rethrow_exception(error);
        co_return transaction;
    }

    // Everything that touches files runs off the loop: reading the config,
    // the drop-in scan, moving refused files aside.
    Task<std::string> reloadConfigAndDropins()
    {
        if (running)
            noteReloadRefusedAsBusy();
        ensureIdle();
        reloading = true;
        try {
            Config fresh = co_await readConfigOffLoop();
            config = std::move(fresh);
            setLogLevel(config.agent.logLevel);
            rebuildStores();
            monitor->reconfigure(monitorSettings());
            if (status.state == AgentState::Failed)
                setProgress(AgentState::Idle, 0, "config reloaded; supervision resumed");
            spdlog::info("config {} reloaded", config.sourceFile.string());
            if (const std::string warning = missingKeysWarning(config.trust); !warning.empty())
                spdlog::warn("{}", warning);
            co_return co_await takeDropins();
        } catch (...) {
            reloading = false;
            throw;
        }
    }

    Task<Config> readConfigOffLoop()
    {
        auto read = [file = config.sourceFile] {
            Config fresh = loadConfig(file);
            checkStateDirUsable(fresh);
            if (const std::string warning = createDropinDir(fresh); !warning.empty())
                spdlog::warn("{}", warning);
            return fresh;
        };
        try {
            co_return co_await runOffLoop(pool, std::move(read));
        } catch (const ConfigError& e) {
            spdlog::error("config refused, the old one is kept: {}", e.what());
            throw AgentError(ErrorKind::InvalidArgument, std::string("config refused, the old one is kept: ") + e.what());
        }
    }

    // A reload while a transaction runs reads nothing: the drop-ins wait for
    // the next one, and LastError says so (nobody sees a reload's reply).
    void noteReloadRefusedAsBusy()
    {
        status.lastError = "reload refused: transaction " + status.transaction + " is running (state " + str(status.state) + "); the files in " +
                           config.agent.dropinDir.string() + " were left there: run `systemctl reload armdock-agent` again once it finished";
        notify({"LastError"});
        spdlog::warn("{}", status.lastError);
    }

    Task<void> moveAsideOffLoop(std::vector<std::pair<fs::path, std::string>> files)
    {
        auto move = [files = std::move(files), rejected = rejectedDir()] {
            for (const auto& [file, reason] : files) {
                try {
                    moveAside(file, rejected, reason);
                } catch (const std::exception& e) {
                    spdlog::error("cannot move {} aside: {}", file.string(), e.what());
                }
            }
        };
        co_await runOffLoop(pool, std::move(move));
    }

    // Ends the reload (clears `reloading`) before it starts the upgrade.
    Task<std::string> takeDropins()
    {
        auto scanFolder = [dir = config.agent.dropinDir, snapshot = config] { return scanDropinFolder(dir, snapshot); };
        DropinScan scan = co_await runOffLoop(pool, std::move(scanFolder));
        for (const auto& [file, reason] : scan.refused)
            spdlog::error("drop-in {} refused: {}", file.string(), reason);
        co_await moveAsideOffLoop(scan.refused);
        reloading = false;
        if (scan.files.empty())
            co_return std::string();
        std::map<std::string, OptionValue> options;
        for (const auto& [name, digest] : scan.sha256)
            options["sha256." + name] = digest;
        std::map<std::string, std::string> signatureOrigins;
        for (const auto& [name, signature] : scan.signatures) {
            options["signature." + name] = signature;
            signatureOrigins[name] = (config.agent.dropinDir / (name + ".minisig")).string();
        }
        std::string refusal;
        ErrorKind kind = ErrorKind::PayloadRejected;
        try {
            TransactionPlan plan = planUpgrade(scan.files, options, nullptr, signatureOrigins);
            plan.dropins = scan.taken;
            dropinsInFlight = scan.taken;
            launch(std::move(plan));
            spdlog::info("drop-in upgrade {} started from {}", status.transaction, config.agent.dropinDir.string());
            co_return status.transaction;
        } catch (const AgentError& e) {
            refusal = e.what();
            kind = e.kind();
        }
        // Nobody waits on a D-Bus reply for a drop-in: say it in LastResult too.
        const std::string tx = newTransactionId();
        std::vector<std::pair<fs::path, std::string>> refused;
        for (const auto& file : scan.taken)
            refused.push_back({file, refusal});
        reloading = true;  // no transaction may start while the moves run: finish() below ends "running"
        co_await moveAsideOffLoop(std::move(refused));
        reloading = false;
        finish(tx, {TransactionResult::Rejected, std::string("drop-in refused (moved to ") + rejectedDir().string() + "): " + refusal, ""});
        throw AgentError(kind, refusal);
    }
};

Agent::Agent(boost::asio::io_context& io, boost::asio::thread_pool& pool, UnitControl& units, EngineApi& engine, Config config)
    : impl_(std::make_unique<Impl>(io, pool, units, engine, std::move(config)))
{
}

Agent::~Agent()
{
    impl_->monitor->stop();
}

Task<void> Agent::startUp()
{
    Impl& d = *impl_;
    d.removeCrashTemporaries();
    d.loadLastResult();
    if (const std::string warning = missingKeysWarning(d.config.trust); !warning.empty())
        spdlog::warn("{}", warning);
    std::optional<JournalContents> pending;
    try {
        pending = d.journal->load();
    } catch (const std::exception& e) {
        spdlog::critical("{}; moving it aside and checking the engine", e.what());
        moveAside(d.journal->file(), d.rejectedDir(), e.what());
    }
    if (pending) {
        d.running = true;
        d.status.transaction = pending->begin.transaction;
        d.setProgress(AgentState::RollingBack, 50, "recovering interrupted transaction " + pending->begin.transaction);
        d.interrupted = std::move(pending);
        co_return;
    }
    // CurrentVersion true from the first read: what answers now, not only
    // the last result's (warmUp asks again once the set is described).
    try {
        d.status.currentVersion = co_await d.engine.version(seconds(1));
    } catch (const std::exception& e) {
        spdlog::info("Docker does not answer on {} yet ({}); CurrentVersion is the last result's, '{}'",
                     d.config.docker.socket.string(), e.what(), d.status.currentVersion);
    }
}

Task<void> Agent::recoverInterrupted()
{
    Impl& d = *impl_;
    if (!d.interrupted) {
        co_await d.reconcileDiversionsAtStart();
        co_return;
    }
    JournalContents pending = std::move(*d.interrupted);
    d.interrupted.reset();
    co_await d.recoverAndFinish(std::move(pending));
}

Task<void> Agent::warmUp()
{
    Impl& d = *impl_;
    const unsigned startedBefore = d.transactionsStarted;
    // A recovery that ran described the set as it settled; again if that failed.
    if (!d.running && (!d.warm || d.installedSetId.empty()))
        co_await d.refreshInstalledSet();
    if (d.transactionsStarted != startedBefore || d.running)
        d.installedSetId.clear();  // a transaction changed it meanwhile; its end describes it again
    try {
        // Reads the manifests once, off the loop: ListBackups answers from memory after this.
        const std::shared_ptr<BackupStore> store = d.backups;
        co_await runOffLoop(d.pool, [&store] { return store->list().size(); });
    } catch (const std::exception& e) {
        spdlog::warn("cannot read the backups in {}: {}", d.backups->dir().string(), e.what());
    }
    d.warm = true;
    d.monitor->start();
    try {
        std::string version = co_await d.engine.version(seconds(5));
        if (version != d.status.currentVersion && !d.running) {
            d.status.currentVersion = version;
            d.notify({"CurrentVersion"});
        }
    } catch (const std::exception& e) {
        spdlog::warn("Docker does not answer on {} yet ({}); CurrentVersion stays '{}'", d.config.docker.socket.string(), e.what(),
                     d.status.currentVersion);
    }
}

std::string Agent::upgrade(const std::map<std::string, std::string>& files, const std::map<std::string, OptionValue>& options)
{
    return impl_->startUpgrade(files, options);
}

std::string Agent::upgradeFds(std::map<std::string, UniqueFd> files, const std::map<std::string, OptionValue>& options)
{
    return impl_->startUpgradeFds(std::move(files), options);
}

std::string Agent::rollback() { return impl_->startRollback(); }
std::string Agent::release() { return impl_->startRelease(); }
std::string Agent::rollbackTo(const std::string& id) { return impl_->startRollbackTo(id); }

void Agent::cancel()
{
    if (!impl_->running)
        throw AgentError(ErrorKind::Failed, "nothing to cancel: no transaction is running");
    if (impl_->interrupted || impl_->recovering)
        throw AgentError(ErrorKind::Failed, "transaction " + impl_->status.transaction +
                                                " is the recovery of an interrupted transaction and cannot be cancelled: it puts the set "
                                                "that was installed before back and starts Docker, then ends by itself");
    impl_->cancelRequested = true;
    spdlog::warn("cancel requested for transaction {} in state {}", impl_->status.transaction, impl_->status.state);
}

std::vector<BackupInfo> Agent::listBackups() const
{
    std::vector<BackupInfo> out;
    for (const auto& set : impl_->backups->list())
        out.push_back({set.id, set.createdUsec, set.version, toString(set.health), set.id == impl_->installedSetId,
                       impl_->notPickedBecause(set)});
    return out;
}

Task<std::vector<SetMember>> Agent::installedPayloads()
{
    // A copy: a Reload may replace the config while a pool thread hashes.
    auto describe = [payloads = impl_->config.payloads] { return describeInstalledSet(payloads); };
    co_return co_await runOffLoop(impl_->pool, std::move(describe));
}

void Agent::installedPayloads(std::function<void(std::vector<SetMember>, std::exception_ptr)> done)
{
    boost::asio::co_spawn(impl_->io, installedPayloads(), [done = std::move(done)](std::exception_ptr error, std::vector<SetMember> members) {
        done(std::move(members), error);
    });
}

Task<PackageReport> Agent::payloadPackages()
{
    auto describe = [root = impl_->config.agent.dpkgRoot, payloads = impl_->config.payloads] { return describePayloadPackages(root, payloads); };
    co_return co_await runOffLoop(impl_->pool, std::move(describe));
}

void Agent::payloadPackages(std::function<void(PackageReport, std::exception_ptr)> done)
{
    boost::asio::co_spawn(impl_->io, payloadPackages(), [done = std::move(done)](std::exception_ptr error, PackageReport report) {
        done(std::move(report), error);
    });
}

Task<std::string> Agent::reload() { return impl_->reload(); }

void Agent::reload(std::function<void(const std::string&, std::exception_ptr)> done)
{
    boost::asio::co_spawn(impl_->io, impl_->reload(), [done = std::move(done)](std::exception_ptr error, std::string transaction) {
        done(transaction, error);
    });
}

const AgentStatus& Agent::status() const { return impl_->status; }
const Config& Agent::config() const { return impl_->config; }
void Agent::addObserver(AgentObserver* observer) { impl_->observers.push_back(observer); }
bool Agent::busy() const { return impl_->running; }
void Agent::refuseNewTransactions() { impl_->stopping = true; }
void Agent::setVersionProbe(VersionProbe probe) { impl_->probe = std::move(probe); }

}  // namespace armdock
