#include "commands.hpp"

#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>

#include "agent_link.hpp"
#include "core/async.hpp"
#include "core/minisign.hpp"
#include "core/side_file.hpp"
#include "docker/docker_client.hpp"
#include "exit_codes.hpp"
#include "progress_view.hpp"

namespace armdock::cli {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

void say(const std::string& line)
{
    std::fprintf(stdout, "%s\n", line.c_str());
    std::fflush(stdout);
}

void complain(const std::string& line)
{
    std::fflush(stdout);
    std::fprintf(stderr, "armdockctl: %s\n", line.c_str());
    std::fflush(stderr);
}

// Splits NAME=VALUE; throws a usage error naming the option otherwise.
std::pair<std::string, std::string> splitPair(const std::string& text, const char* option)
{
    const auto at = text.find('=');
    if (at == std::string::npos || at == 0 || at + 1 == text.size())
        throw CliError(exitUsage, std::string(option) + " wants NAME=VALUE, not '" + text + "'");
    return {text.substr(0, at), text.substr(at + 1)};
}

std::string absoluteFromHere(const std::string& path)
{
    return fs::absolute(fs::path(path)).lexically_normal().string();
}

// Opens a source for UpgradeFds: armdockctl reads the file, so the agent
// needs no path of its own to it (its unit's PrivateTmp= and ProtectHome=
// hide /tmp and /home from it). A device is never opened (opening one can
// have side effects); a FIFO does not block (O_NONBLOCK). The agent checks
// owner, mode and ELF on the descriptor.
sdbus::UnixFd openSource(const std::string& name, const std::string& path)
{
    auto refuse = [&](const std::string& problem) {
        return CliError(exitRejected, "payload " + name + ": " + path + " " + problem);
    };
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
        throw refuse(std::string("is a ") + (S_ISCHR(st.st_mode) ? "character" : "block") +
                     " device, not a regular file; give the path of the " + name + " binary");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd >= 0)
        return sdbus::UnixFd(fd, sdbus::adopt_fd);
    const int error = errno;
    if (error == ENOENT)
        throw refuse("does not exist; check the path");
    if (error == ELOOP)
        throw refuse("is a symlink; give the path of the file itself (symlinks are refused)");
    if (error == EACCES)
        throw refuse("cannot be opened (" + std::string(std::strerror(error)) +
                     "); armdockctl reads the file itself and passes it to the agent: run it as a user who may read the file");
    throw refuse("cannot be opened (" + std::string(std::strerror(error)) + ")");
}

// Each payload's signature text: the file --signature NAME=FILE names, else
// SOURCE.minisig when it lies beside the source (minisign's own default), else none.
std::map<std::string, std::string> signaturesFor(const std::map<std::string, std::string>& files, const std::vector<std::string>& given)
{
    std::map<std::string, std::string> paths;
    for (const auto& s : given) {
        auto [name, path] = splitPair(s, "--signature");
        if (!files.contains(name))
            throw CliError(exitUsage, "--signature " + s + ": payload " + name + " is not among the files to upgrade");
        paths[name] = absoluteFromHere(path);
    }
    for (const auto& [name, source] : files) {
        struct stat st {};
        if (!paths.contains(name) && ::stat((source + ".minisig").c_str(), &st) == 0) {
            paths[name] = source + ".minisig";
            std::fprintf(stderr, "payload %s: sending its signature %s\n", name.c_str(), paths[name].c_str());
        }
    }
    std::map<std::string, std::string> texts;
    for (const auto& [name, path] : paths) {
        try {
            // armdockctl reads it for the agent: a link to it is fine (the agent checks the text).
            std::error_code ec;
            const auto resolved = std::filesystem::canonical(path, ec);
            texts[name] = readSmallRegularFile(ec ? std::filesystem::path(path) : resolved, maxMinisignText, "a minisign signature");
        } catch (const std::exception& e) {
            throw CliError(exitRejected, "payload " + name + ": its signature " + path + " " + e.what());
        }
    }
    return texts;
}

std::string utcTime(std::uint64_t usec)
{
    const std::time_t seconds = static_cast<std::time_t>(usec / 1000000);
    std::tm tm{};
    ::gmtime_r(&seconds, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

// Follows transaction `tx` until its Finished signal (the handlers were
// installed when `link` was made, before the call that started it), showing
// its progress. Returns the exit code of its result.
int waitForEnd(AgentLink& link, const std::string& tx, const WaitOptions& options)
{
    ProgressView view(stdout);
    bool ended = false, timedOut = false, interrupted = false, agentLeft = false;
    std::string result, message;

    auto show = [&](const LiveProgress& live) {
        if (!ended)
            view.update(live.state, live.percent, live.message);
    };
    link.events().finished = [&](const std::string& finishedTx, const std::string& finishedResult, const std::string& finishedMessage) {
        if (finishedTx != tx)
            return;
        ended = true;
        result = finishedResult;
        message = finishedMessage;
        link.stop();
    };
    link.events().changed = show;
    link.events().ownerChanged = [&](bool onBus) {
        if (!onBus) {
            agentLeft = true;
            link.stop();
        }
    };
    asio::signal_set signals(link.io(), SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec)
            return;
        interrupted = true;
        link.stop();
    });
    asio::steady_timer timer(link.io());
    if (options.timeoutSec > 0) {
        timer.expires_after(std::chrono::seconds(options.timeoutSec));
        timer.async_wait([&](const boost::system::error_code& ec) {
            if (ec)
                return;
            timedOut = true;
            link.stop();
        });
    }
    // The changes since the call (queued behind it) are dispatched now.
    link.kick();
    link.run();
    link.events() = {};
    view.close();

    if (ended) {
        const std::string line = result + ": " + message + " (transaction " + tx + ")";
        const ExitCode code = exitCodeOfResult(result);
        if (code == exitSuccess)
            say(line);
        else
            complain(line);
        return code;
    }
    if (agentLeft)
        throw CliError(exitNotRunning, "armdock-agent left the bus while transaction " + tx +
                                           " ran; when it starts again it completes or undoes that transaction "
                                           "(armdockctl status shows the outcome). Start it with: " +
                                           startHint(link.busSetting()));
    std::string state = "unknown";
    try {
        state = link.agent().State();
    } catch (const sdbus::Error&) {
    }
    if (timedOut)
        throw CliError(exitTimedOut, "transaction " + tx + " still runs after " + std::to_string(options.timeoutSec) +
                                         " s (state " + state + "); follow it with armdockctl watch, stop it with armdockctl cancel");
    if (interrupted)
        throw CliError(exitInterrupted, "stopped waiting; transaction " + tx + " goes on (state " + state +
                                            "): armdockctl watch follows it, armdockctl cancel stops it");
    throw CliError(exitFailed, "stopped waiting for transaction " + tx + " for no known reason");
}

int startedTransaction(AgentLink& link, const std::string& kind, const std::string& tx, const WaitOptions& wait)
{
    if (wait.noWait) {
        say(tx);
        return exitSuccess;
    }
    say(kind + " " + tx + " started");
    return waitForEnd(link, tx, wait);
}

struct DockerHealth {
    bool answered = false;
    std::string version;
    std::string error;
};

DockerHealth probeDocker(AgentLink& link, const std::string& socket)
{
    DockerHealth health;
    DockerClient docker(link.io(), socket);
    auto probe = [&]() -> Task<void> {
        try {
            health.answered = co_await docker.ping(std::chrono::seconds(2));
            if (!health.answered)
                health.error = "/_ping did not answer OK";
            else
                health.version = co_await docker.version(std::chrono::seconds(2));
        } catch (const std::exception& e) {
            health.error = e.what();
        }
    };
    asio::co_spawn(link.io(), probe, [&](std::exception_ptr) { link.stop(); });
    link.run();
    return health;
}

}  // namespace

int runStatus(const GlobalOptions& global, bool json)
{
    AgentLink link(global.bus);
    const auto s = link.call([](AgentProxy& a) { return a.snapshot(); });
    // ListBackups is a method: only root and allowed_groups may call it.
    std::optional<std::size_t> backups;
    std::string backupsRefused;
    try {
        backups = link.call([](AgentProxy& a) { return a.ListBackups(); }).size();
    } catch (const CliError& e) {
        if (e.code() != exitAccessDenied)
            throw;
        backupsRefused = "unknown (listing them needs root or allowed_groups)";
    }
    const DockerHealth docker = probeDocker(link, global.dockerSocket);
    // The package manager beside each payload (a method too); an agent older than it has none.
    using PackageRows = std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string, bool, std::vector<std::string>>>;
    std::optional<std::tuple<PackageRows, std::vector<std::string>>> packages;
    std::string packagesUnknown;
    try {
        packages = link.call([](AgentProxy& a) -> std::optional<std::tuple<PackageRows, std::vector<std::string>>> {
            try {
                return a.ListPayloadPackages();
            } catch (const sdbus::Error& e) {
                if (e.getName() == "org.freedesktop.DBus.Error.UnknownMethod")
                    return std::nullopt;
                throw;
            }
        });
        if (!packages)
            packagesUnknown = "unknown (this agent does not report them)";
    } catch (const CliError& e) {
        if (e.code() != exitAccessDenied)
            throw;
        packagesUnknown = "unknown (listing them needs root or allowed_groups)";
    }

    if (json) {
        nlohmann::json j{
            {"state", s.state},
            {"running", s.running()},
            {"progress", {{"percent", s.percent}, {"message", s.message}}},
            {"transaction", s.transaction},
            {"current_version", s.currentVersion},
            {"last_result", s.lastResult},
            {"last_error", s.lastError},
            {"monitor", {{"healthy", s.healthy}, {"last_check_usec", s.lastHealthCheckUsec}, {"engine_restarts", s.engineRestarts}}},
            {"backups", backups ? nlohmann::json(*backups) : nlohmann::json(nullptr)},
            {"docker", {{"socket", global.dockerSocket}, {"healthy", docker.answered}, {"version", docker.version}, {"error", docker.error}}},
        };
        if (packages) {
            nlohmann::json rows = nlohmann::json::array();
            for (const auto& p : std::get<0>(*packages)) {
                nlohmann::json owners = nlohmann::json::array();
                for (std::size_t at = 0, next = 0; at < p.get<2>().size(); at = next + 1) {
                    next = std::min(p.get<2>().find(',', at), p.get<2>().size());
                    owners.push_back(p.get<2>().substr(at, next - at));
                }
                rows.push_back({{"payload", p.get<0>()}, {"path", p.get<1>()}, {"packages", owners}, {"diverted_to", p.get<3>()},
                                {"diverted_by", p.get<4>()}, {"held", p.get<5>()}, {"warnings", p.get<6>()}});
            }
            j["packages"] = rows;
            j["host_warnings"] = std::get<1>(*packages);
        } else {
            j["packages"] = nullptr;
        }
        say(j.dump(2));
        return exitSuccess;
    }
    auto row = [](const char* key, const std::string& value) { std::fprintf(stdout, "%-14s%s\n", key, value.c_str()); };
    row("State:", s.state);
    if (s.running())
        row("Progress:", std::to_string(s.percent) + "%  " + s.message);
    row("Engine:", s.currentVersion.empty() ? "(unknown: the engine did not answer)" : s.currentVersion);
    row("Transaction:", s.transaction.empty() ? "(none yet)" : s.transaction + (s.running() ? " (running)" : ""));
    row("Last result:", s.lastResult);
    if (!s.lastError.empty())
        row("Last error:", s.lastError);
    row("Backups:", backups ? std::to_string(*backups) : backupsRefused);
    row("Monitor:", std::string(s.healthy ? "healthy" : "UNHEALTHY") + ", " + std::to_string(s.engineRestarts) +
                        " engine restart(s) since the agent started" + (s.lastHealthCheckUsec ? "" : ", no check yet"));
    row("Docker:", docker.answered ? "healthy (" + global.dockerSocket + " answers /_ping; engine " + docker.version + ")"
                                   : "not answering (" + docker.error + ")");
    if (!packages) {
        row("Packages:", packagesUnknown);
    } else {
        const char* label = "Packages:";
        for (const auto& p : std::get<0>(*packages)) {
            std::string line = p.get<0>() + "  " + p.get<1>() + ": ";
            if (p.get<2>().empty()) {
                line += "no package";
            } else {
                line += "package " + p.get<2>() + ", " +
                        (p.get<3>().empty() ? "not diverted" : "diverted to " + p.get<3>() + " (" + p.get<4>() + ")") + ", " +
                        (p.get<5>() ? "held" : "not held");
            }
            row(label, line);
            label = "";
            for (const auto& w : p.get<6>())
                row("", "warning: " + w);
        }
        for (const auto& w : std::get<1>(*packages))
            row(label, "warning: " + w);
    }
    std::fflush(stdout);
    return exitSuccess;
}

int runUpgrade(const GlobalOptions& global, const UpgradeOptions& options)
{
    std::map<std::string, std::string> files;
    if (!options.docker.empty())
        files["docker"] = absoluteFromHere(options.docker);
    if (!options.dockerinit.empty())
        files["dockerinit"] = absoluteFromHere(options.dockerinit);
    for (const auto& p : options.payloads) {
        auto [name, path] = splitPair(p, "--payload");
        files[name] = absoluteFromHere(path);
    }
    if (files.empty())
        throw CliError(exitUsage, "nothing to upgrade: give --docker PATH, --dockerinit PATH or --payload NAME=PATH");
    std::map<std::string, sdbus::Variant> dbusOptions;
    for (const auto& s : options.sha256) {
        auto [name, hex] = splitPair(s, "--sha256");
        dbusOptions["sha256." + name] = sdbus::Variant(hex);
    }
    for (const auto& [name, text] : signaturesFor(files, options.signatures))
        dbusOptions["signature." + name] = sdbus::Variant(text);
    if (options.allowDowngrade)
        dbusOptions["allow_downgrade"] = sdbus::Variant(true);
    if (options.dryRun)
        dbusOptions["dry_run"] = sdbus::Variant(true);
    if (options.healthTimeoutSec)
        dbusOptions["health_timeout_sec"] = sdbus::Variant(static_cast<std::uint32_t>(*options.healthTimeoutSec));

    AgentLink link(global.bus);  // subscribed to Finished and PropertiesChanged before the call
    link.call([](AgentProxy& a) { a.primeLive(); });
    // Opened once the agent answered: an agent that is not running is told first.
    std::map<std::string, sdbus::UnixFd> descriptors;
    std::map<std::string, sdbus::Variant> fdOptions = dbusOptions;
    for (const auto& [name, path] : files) {
        descriptors.emplace(name, openSource(name, path));
        fdOptions["source." + name] = sdbus::Variant(path);  // the agent's messages name the path, not fd:NAME
    }
    const std::string tx = link.call([&](AgentProxy& a) {
        try {
            return a.UpgradeFds(descriptors, fdOptions);
        } catch (const sdbus::Error& e) {
            const std::string name = e.getName();
            if (name != "org.freedesktop.DBus.Error.UnknownMethod")
                throw;
        }
        // An agent older than UpgradeFds opens the paths itself.
        return a.Upgrade(files, dbusOptions);
    });
    return startedTransaction(link, options.dryRun ? "dry-run upgrade" : "upgrade", tx, options.wait);
}

int runRollback(const GlobalOptions& global, const WaitOptions& wait, const std::string& to)
{
    AgentLink link(global.bus);
    link.call([](AgentProxy& a) { a.primeLive(); });
    const std::string tx = link.call([&](AgentProxy& a) { return to.empty() ? a.Rollback() : a.RollbackTo(to); });
    return startedTransaction(link, to.empty() ? "rollback" : "rollback to " + to, tx, wait);
}

int runRelease(const GlobalOptions& global, const WaitOptions& wait)
{
    AgentLink link(global.bus);
    link.call([](AgentProxy& a) { a.primeLive(); });
    const std::string tx = link.call([](AgentProxy& a) { return a.Release(); });
    return startedTransaction(link, "release of the packaged files", tx, wait);
}

int runCancel(const GlobalOptions& global)
{
    AgentLink link(global.bus);
    link.call([](AgentProxy& a) { a.Cancel(); });
    const auto s = link.call([](AgentProxy& a) { return a.snapshot(); });
    say("cancel requested for transaction " + s.transaction + " (state " + s.state +
        "); it stops at its next safe point, rolling back if the engine was already swapped");
    return exitSuccess;
}

int runBackups(const GlobalOptions& global, bool json)
{
    AgentLink link(global.bus);
    const auto backups = link.call([](AgentProxy& a) { return a.ListBackupSets(); });
    if (json) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& b : backups)
            list.push_back({{"id", b.get<0>()}, {"created_usec", b.get<1>()}, {"created", utcTime(b.get<1>())}, {"version", b.get<2>()},
                            {"health", b.get<3>()}, {"installed", b.get<4>()}, {"rollback_skips_because", b.get<5>()}});
        say(list.dump(2));
        return exitSuccess;
    }
    if (backups.empty()) {
        say("no backups yet (one is made before each upgrade that changes the engine set)");
        return exitSuccess;
    }
    std::size_t idWidth = 2;
    for (const auto& b : backups)
        idWidth = std::max(idWidth, b.get<0>().size());
    const int w = static_cast<int>(idWidth);
    std::size_t versionWidth = 7;
    for (const auto& b : backups)
        versionWidth = std::max(versionWidth, b.get<2>().size());
    const int v = static_cast<int>(versionWidth);
    // STATE: the set's health, "installed" for the set on disk; NOTE: why `rollback` without --to would not pick it.
    std::fprintf(stdout, "%-*s  %-20s  %-*s  %-9s  %s\n", w, "ID", "CREATED (UTC)", v, "VERSION", "STATE", "NOTE");
    for (const auto& b : backups) {
        const std::string note = b.get<4>() ? "installed" : b.get<5>();
        std::fprintf(stdout, "%-*s  %-20s  %-*s  %-9s  %s\n", w, b.get<0>().c_str(), utcTime(b.get<1>()).c_str(), v, b.get<2>().c_str(),
                     b.get<3>().c_str(), note.c_str());
    }
    std::fflush(stdout);
    return exitSuccess;
}

int runPayloads(const GlobalOptions& global, bool json)
{
    AgentLink link(global.bus);
    const auto payloads = link.call([](AgentProxy& a) { return a.ListPayloads(); });
    if (json) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& p : payloads)
            list.push_back({{"name", p.get<0>()}, {"path", p.get<1>()}, {"present", p.get<2>()}, {"sha256", p.get<3>()},
                            {"link", p.get<4>()}});
        say(list.dump(2));
        return exitSuccess;
    }
    std::size_t nameWidth = 4;
    for (const auto& p : payloads)
        nameWidth = std::max(nameWidth, p.get<0>().size());
    const int w = static_cast<int>(nameWidth);
    std::fprintf(stdout, "%-*s  %-64s  %s\n", w, "NAME", "SHA-256", "PATH");
    for (const auto& p : payloads) {
        const std::string sha = p.get<2>() ? (p.get<3>().empty() ? "(a link to nothing)" : p.get<3>()) : "(absent)";
        const std::string path = p.get<1>() + (p.get<4>().empty() ? "" : " -> " + p.get<4>());
        std::fprintf(stdout, "%-*s  %-64s  %s\n", w, p.get<0>().c_str(), sha.c_str(), path.c_str());
    }
    std::fflush(stdout);
    return exitSuccess;
}

int runReload(const GlobalOptions& global)
{
    AgentLink link(global.bus);
    const std::string before = link.call([](AgentProxy& a) { return a.Transaction(); });
    link.call([](AgentProxy& a) { a.Reload(); });
    const auto s = link.call([](AgentProxy& a) { return a.snapshot(); });
    if (s.transaction != before && s.running())
        say("configuration re-read; transaction " + s.transaction +
            " started from the drop-in folder (armdockctl watch follows it)");
    else if (s.transaction != before)
        say("configuration re-read; drop-in transaction " + s.transaction + ": " + s.lastResult +
            (s.lastError.empty() ? "" : ": " + s.lastError));
    else
        say("configuration re-read; nothing waits in the drop-in folder");
    return exitSuccess;
}

int runWatch(const GlobalOptions& global)
{
    AgentLink link(global.bus);
    ProgressView view(stdout, false);  // lines, also on a terminal
    auto show = [&](const LiveProgress& live) { view.update(live.state, live.percent, live.message); };
    link.call([](AgentProxy& a) { a.primeLive(); });
    const auto s = link.call([](AgentProxy& a) { return a.snapshot(); });
    say("watching armdock-agent: engine " + (s.currentVersion.empty() ? "unknown" : s.currentVersion) + ", last transaction " +
        (s.transaction.empty() ? str(TransactionResult::None) : s.transaction + " " + s.lastResult) + " (Ctrl-C stops)");
    view.update(s.state, s.percent, s.message);

    link.events().changed = show;
    link.events().finished = [&](const std::string& tx, const std::string& result, const std::string& message) {
        say("finished " + tx + ": " + result + ": " + message);
    };
    link.events().ownerChanged = [&](bool onBus) {
        say(onBus ? "armdock-agent is on the bus again" : "armdock-agent left the bus (waiting for it to come back)");
        if (onBus) {
            link.agent().primeLive();
            link.kick();
            show(link.agent().live());
        }
    };
    asio::signal_set signals(link.io(), SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (!ec)
            link.stop();
    });
    link.kick();
    link.run();
    link.events() = {};
    return exitSuccess;
}

}  // namespace armdock::cli
