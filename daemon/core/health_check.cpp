// Step 6 of a transaction: is the new engine up and staying up?
//
// Time budget: `timeout` runs from the start job's end to a passing check;
// the grace period is added to it (a 5 s grace never eats into the time the
// containers have to come back), the smoke command gets what is left, at
// least minSmokeTimeout.
#include "core/health_check.hpp"

// The same GCC 12 false positive on Boost.Asio's coroutine frame allocator
// as in transaction.cpp (see there).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
#include "core/child_process.hpp"
#include "core/process_start.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>
#include <system_error>
#include <utility>

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>


namespace armdock {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds gracePollInterval{100};
constexpr milliseconds gracePingTimeout{1000};
constexpr milliseconds pingSlice{1000};  // re-check the unit between pings this long
constexpr milliseconds pingRetryDelay{20};
constexpr milliseconds containersPollInterval{200};
constexpr milliseconds componentsPollInterval{100};
constexpr milliseconds minRequestTimeout{1000};
constexpr milliseconds maxRequestTimeout{10000};
constexpr milliseconds minSmokeTimeout{1000};
constexpr std::size_t maxCommandOutput = 64 * 1024;

std::string formatDuration(milliseconds d)
{
    if (d.count() >= 1000 && d.count() % 1000 == 0) {
        return std::to_string(d.count() / 1000) + " s";
    }
    if (d.count() >= 1000) {
        return std::to_string(d.count() / 1000) + "." + std::to_string(d.count() % 1000 / 100) + " s";
    }
    return std::to_string(d.count()) + " ms";
}

milliseconds remainingUntil(Clock::time_point deadline)
{
    return std::max(std::chrono::ceil<milliseconds>(deadline - Clock::now()), milliseconds{0});
}

// A single request (version, info) gets the time left, within sane bounds.
milliseconds requestTimeout(Clock::time_point deadline)
{
    return std::clamp(remainingUntil(deadline), minRequestTimeout, maxRequestTimeout);
}

void throwIfCancelled(const HealthExpectations& expect, const char* check)
{
    if (expect.cancelled && expect.cancelled())
        throw HealthCheckCancelled(std::string("cancelled by request during the ") + check + " check");
}

Task<void> waitUntil(Clock::time_point at)
{
    asio::steady_timer timer(co_await asio::this_coro::executor, at);
    co_await timer.async_wait(asio::use_awaitable);
}

std::string toLower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

void report(const HealthProgress& progress, const std::string& line)
{
    if (progress) {
        progress(line);
    }
}

std::string journalHint(const HealthExpectations& expect)
{
    return "see journalctl -u " + expect.serviceUnit;
}

// ---- the checks ----

Task<void> checkPing(EngineApi& engine, UnitControl& units, const HealthExpectations& expect,
                     Clock::time_point deadline)
{
    std::string lastError = "no answer";
    for (;;) {
        throwIfCancelled(expect, "ping");
        auto left = remainingUntil(deadline);
        if (left.count() == 0) {
            break;
        }
        try {
            // One ping detects readiness the moment the engine serves; it is cut
            // into slices only to notice a unit that failed meanwhile.
            if (co_await engine.ping(std::min(left, pingSlice))) {
                co_return;
            }
            lastError = "it answered, but not with OK";
        } catch (const EngineUnreachable& e) {
            lastError = e.what();
        }
        auto state = co_await units.activeState(expect.serviceUnit);
        if (state == "failed" || state == "inactive") {
            throw HealthCheckFailed("ping", "check ping: " + expect.serviceUnit + " is " + state + " and " +
                                                expect.socketPath + " does not answer GET /_ping (" + lastError +
                                                "); " + journalHint(expect));
        }
        if (remainingUntil(deadline).count() > 0) {
            co_await waitUntil(std::min(Clock::now() + pingRetryDelay, deadline));
        }
    }
    throw HealthCheckFailed("ping", "check ping: " + expect.socketPath + " did not answer GET /_ping within " +
                                        formatDuration(expect.timeout) + " after " + expect.serviceUnit +
                                        " started (last: " + lastError + "); " + journalHint(expect));
}

Task<void> checkVersion(EngineApi& engine, const HealthExpectations& expect, Clock::time_point deadline)
{
    std::string seen;
    throwIfCancelled(expect, "version");
    try {
        seen = co_await engine.version(requestTimeout(deadline));
    } catch (const EngineUnreachable& e) {
        throw HealthCheckFailed("version", "check version: GET /version on " + expect.socketPath +
                                               " failed: " + e.what() + "; " + journalHint(expect));
    }
    if (seen != expect.expectedVersion) {
        throw HealthCheckFailed("version", "check version: " + expect.socketPath + " reports version " + seen +
                                               " but the installed engine is " + expect.expectedVersion +
                                               "; another engine may be running — check which binary " +
                                               expect.serviceUnit + " runs (systemctl cat " +
                                               expect.serviceUnit + ")");
    }
}

Task<void> checkInitSha1(EngineApi& engine, const HealthExpectations& expect, Clock::time_point deadline)
{
    std::optional<std::string> seen;
    try {
        seen = co_await engine.initSha1(requestTimeout(deadline));
    } catch (const EngineUnreachable& e) {
        throw HealthCheckFailed("initsha1", "check initsha1: GET /info on " + expect.socketPath + " failed: " +
                                                e.what() + "; " + journalHint(expect));
    }
    if (!seen) {
        co_return;  // engines after 1.10 do not report it
    }
    if (toLower(*seen) != toLower(*expect.expectedInitSha1)) {
        throw HealthCheckFailed("initsha1", "check initsha1: " + expect.socketPath + " reports InitSha1 " + *seen +
                                                " but the installed dockerinit has SHA-1 " +
                                                *expect.expectedInitSha1 +
                                                "; docker and dockerinit come from different builds — install "
                                                "the pair from one release");
    }
}

std::string describeComponents(const std::vector<ComponentVersion>& list)
{
    std::string out;
    for (const auto& c : list)
        out += (out.empty() ? "" : ", ") + c.name + " " + c.version;
    return out.empty() ? "no components" : out;
}

// A component the engine reports with another version fails at once: it is
// what the engine uses now. One it does not report yet (dockerd reconnecting
// to a restarted containerd) is asked for again until the deadline.
Task<void> checkComponents(EngineApi& engine, const HealthExpectations& expect, Clock::time_point deadline)
{
    const auto fail = [&](const std::string& what) { return HealthCheckFailed("components", "check components: " + what); };
    std::vector<ComponentVersion> seen;
    std::string lastError;
    for (;;) {
        throwIfCancelled(expect, "components");
        std::vector<const ExpectedComponent*> missing;
        try {
            seen = co_await engine.components(requestTimeout(deadline));
            lastError.clear();
            for (const auto& want : expect.components) {
                auto it = std::find_if(seen.begin(), seen.end(), [&](const ComponentVersion& c) { return c.name == want.name; });
                if (it == seen.end()) {
                    missing.push_back(&want);
                } else if (!sameComponentVersion(it->version, want.version)) {
                    throw fail(expect.socketPath + " reports " + want.name + " " + it->version + ", but the new " + want.path +
                               " (payload " + want.payload + ") is " + want.version +
                               ": the engine does not use the file just installed. Check that it runs that path (dockerd's "
                               "--containerd, its runtimes and init-path in /etc/docker/daemon.json, the PATH of " +
                               expect.serviceUnit + ") and that the payload's units restart the service that runs it");
                }
            }
            if (missing.empty())
                co_return;
        } catch (const EngineUnreachable& e) {
            lastError = e.what();
        }
        if (remainingUntil(deadline).count() == 0) {
            if (!lastError.empty())
                throw fail("GET /version on " + expect.socketPath + " failed: " + lastError + "; " + journalHint(expect));
            std::string names;
            for (const auto* m : missing)
                names += (names.empty() ? "" : ", ") + m->name + " (payload " + m->payload + ")";
            throw fail(expect.socketPath + " does not report " + names + " among its Components (it reports " + describeComponents(seen) +
                       ") within " + formatDuration(expect.timeout) + ": either the engine cannot reach it (" + journalHint(expect) +
                       ") or the payload's component names none of them; set component to one of those names");
        }
        co_await waitUntil(std::min(Clock::now() + componentsPollInterval, deadline));
    }
}

std::string describeIdentity(const ExecutableIdentity& id)
{
    return "device " + std::to_string(id.device) + ", inode " + std::to_string(id.inode);
}

// A rebuild with the same version passes the version check on the old
// process too; only the kernel knows which file the main process runs.
Task<void> checkMainExe(UnitControl& units, const HealthExpectations& expect, const std::string& unit, const ExecutableIdentity& want)
{
    const auto fail = [&](const std::string& what) { return HealthCheckFailed("exe", "check exe: " + what); };
    const auto pid = co_await units.mainPid(unit);
    if (pid == 0)
        throw fail(unit + " has no main process; " + journalHint(expect));
    const std::string exe = "/proc/" + std::to_string(pid) + "/exe";
    struct stat st {};
    if (::stat(exe.c_str(), &st) != 0) {
        const int error = errno;
        throw fail("cannot see which file " + unit + "'s main process (PID " + std::to_string(pid) + ") runs: stat " + exe + ": " +
                   std::strerror(error) +
                   (error == EACCES || error == EPERM ? "; the agent needs CAP_SYS_PTRACE in its unit's CapabilityBoundingSet "
                                                        "to read it (the shipped unit has it)"
                                                      : ""));
    }
    if (st.st_dev == want.device && st.st_ino == want.inode)
        co_return;
    char link[PATH_MAX + 1] = {};
    const ssize_t n = ::readlink(exe.c_str(), link, PATH_MAX);
    const std::string runs = n > 0 ? std::string(link, static_cast<std::size_t>(n)) : std::string("another file");
    throw fail(unit + "'s main process (PID " + std::to_string(pid) + ") runs " + runs + " (" +
               describeIdentity({runs, st.st_dev, st.st_ino}) + "), not the installed " + want.path + " (" + describeIdentity(want) +
               "): the engine that answers is not the file just installed. Check which binary " + unit + " runs (systemctl cat " +
               unit + ") against the payload's path in the agent's config; only for a target that is a launcher of another "
               "program, set [docker] check_main_exe = false");
}

Task<void> checkGrace(EngineApi& engine, UnitControl& units, const HealthExpectations& expect)
{
    const auto& unit = expect.serviceUnit;
    const auto fail = [&](const std::string& what) {
        return HealthCheckFailed("grace", "check grace: " + what + " during the " + formatDuration(expect.grace) +
                                              " grace period; " + journalHint(expect));
    };
    const auto pid = co_await units.mainPid(unit);
    if (pid == 0) {
        throw fail(unit + " has no main process");
    }
    const auto start = Clock::now();
    const auto end = start + expect.grace;
    for (auto tick = start;;) {
        throwIfCancelled(expect, "grace");
        auto state = co_await units.activeState(unit);
        if (state != "active") {
            throw fail(unit + " went " + state);
        }
        auto nowPid = co_await units.mainPid(unit);
        if (nowPid != pid) {
            throw fail(unit + " main PID changed from " + std::to_string(pid) + " to " + std::to_string(nowPid) +
                       " (the engine restarted)");
        }
        bool answered = false;
        std::string error = "answered, but not with OK";
        try {
            answered = co_await engine.ping(gracePingTimeout);
        } catch (const EngineUnreachable& e) {
            error = e.what();
        }
        if (!answered) {
            throw fail(expect.socketPath + " stopped answering GET /_ping (" + error + ")");
        }
        if (Clock::now() >= end) {
            co_return;
        }
        tick += gracePollInterval;
        co_await waitUntil(std::min(std::max(tick, Clock::now()), end));
    }
}

std::string describeContainer(const ContainerSummary& c)
{
    const auto shortId = c.id.substr(0, 12);
    return c.name.empty() ? shortId : c.name + " (" + shortId + ")";
}

}  // namespace

std::vector<ContainerSummary> containersExpectedBack(const std::vector<ContainerSummary>& all)
{
    std::vector<ContainerSummary> back;
    for (const auto& c : all)
        if (c.state == "running" && (c.restartPolicy == "always" || c.restartPolicy == "unless-stopped"))
            back.push_back(c);
    return back;
}

Task<void> waitForContainers(EngineApi& engine, const HealthExpectations& expect, Clock::time_point deadline)
{
    std::string lastSeen;
    for (;;) {
        throwIfCancelled(expect, "containers");
        try {
            auto list = co_await engine.containers(requestTimeout(deadline));
            std::vector<std::string> missing;
            for (const auto& wanted : expect.containersBack) {
                auto it = std::find_if(list.begin(), list.end(), [&](const ContainerSummary& c) {
                    return c.id == wanted.id || (c.id.size() > wanted.id.size() && c.id.compare(0, wanted.id.size(), wanted.id) == 0);
                });
                if (it == list.end()) {
                    missing.push_back(describeContainer(wanted) + ": gone from the engine");
                } else if (it->state != "running") {
                    missing.push_back(describeContainer(wanted) + ": " + (it->state.empty() ? "unknown state" : it->state));
                }
            }
            if (missing.empty()) {
                co_return;
            }
            lastSeen.clear();
            for (const auto& m : missing) {
                lastSeen += (lastSeen.empty() ? "" : ", ") + m;
            }
        } catch (const EngineUnreachable& e) {
            lastSeen = e.what();
        }
        if (remainingUntil(deadline).count() == 0) {
            break;
        }
        co_await waitUntil(std::min(Clock::now() + containersPollInterval, deadline));
    }
    throw HealthCheckFailed("containers", "check containers: containers that ran before the restart did not run "
                                          "again within " +
                                              formatDuration(expect.timeout) + " after " + expect.serviceUnit +
                                              " started: " + lastSeen +
                                              "; see docker ps -a and " + journalHint(expect));
}

namespace {

// Live-restore: every container seen running before the restart still runs
// in the same process (Pid and its start time). A restarted or stopped one is
// final: it is not waited for.
Task<void> checkKeptRunning(EngineApi& engine, const HealthExpectations& expect, Clock::time_point deadline)
{
    std::vector<ContainerSummary> list;
    for (;;) {
        throwIfCancelled(expect, "live-restore");
        try {
            list = co_await engine.containers(requestTimeout(deadline));
            break;
        } catch (const EngineUnreachable& e) {
            if (remainingUntil(deadline).count() == 0)
                throw HealthCheckFailed("live-restore", std::string("check live-restore: cannot list the containers: ") + e.what());
        }
        co_await waitUntil(std::min(Clock::now() + containersPollInterval, deadline));
    }
    std::string lost;
    for (const auto& kept : expect.keptRunning) {
        const auto it = std::find_if(list.begin(), list.end(), [&](const ContainerSummary& c) { return c.id == kept.id; });
        const std::string who = "container " + kept.name + " (" + kept.id.substr(0, 12) + ", Pid " + std::to_string(kept.pid) + ")";
        std::string what;
        if (it == list.end())
            what = who + " is gone";
        else if (it->state != "running")
            what = who + " is " + (it->state.empty() ? "in an unknown state" : it->state);
        else if (it->pid != kept.pid)
            what = who + " was restarted (Pid " + std::to_string(it->pid) + " now)";
        else if (processStartTime(kept.pid) != kept.startTime)
            what = who + " runs another process under the same Pid";
        if (!what.empty())
            lost += (lost.empty() ? "" : "; ") + what;
    }
    if (!lost.empty())
        throw HealthCheckFailed("live-restore", "check live-restore: containers did not keep running through the restart of " + expect.serviceUnit +
                                                    ": " + lost + ". The new engine stopped them: is it started with --live-restore "
                                                    "(systemctl cat " + expect.serviceUnit + ", or \"live-restore\": true in "
                                                    "/etc/docker/daemon.json)? " + journalHint(expect));
}

Task<void> checkSmoke(boost::asio::thread_pool& pool, const HealthExpectations& expect, Clock::time_point deadline)
{
    const auto timeout = std::max(remainingUntil(deadline), minSmokeTimeout);
    const auto& argv = expect.smokeCommand;
    // Named, not a temporary in the co_await expression (see async.hpp: GCC 12
    // destroys such temporaries twice).
    auto run = [&argv, timeout]() {
        std::string out;
        int st = runCommandWithTimeout(argv, timeout, &out);
        return std::make_pair(st, std::move(out));
    };
    auto [status, output] = co_await runOffLoop(pool, std::move(run));
    if (status != 0) {
        auto line = lastLine(output);
        throw HealthCheckFailed("smoke", "check smoke: `" + joinCommand(argv) + "` exited with status " +
                                             std::to_string(status) + (line.empty() ? "" : ": " + line) +
                                             "; run it by hand to see why, or change smoke_command");
    }
}

}  // namespace

int runCommandWithTimeout(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          std::string* output)
{
    const std::string command = joinCommand(argv);
    if (argv.empty())
        throw HealthCheckFailed("smoke", "check smoke: the smoke command is empty");
    ChildOutcome child;
    try {
        child = runChild(argv, timeout, maxCommandOutput);
    } catch (const std::system_error& e) {
        throw HealthCheckFailed("smoke", "check smoke: cannot run `" + command + "`: " + std::strerror(e.code().value()));
    }
    if (output)
        *output = std::move(child.output);
    if (child.end == ChildOutcome::End::TimedOut)
        throw HealthCheckFailed("smoke", "check smoke: `" + command + "` did not finish within " + formatDuration(timeout) +
                                             " and was killed; run it by hand to see where it hangs");
    if (child.end == ChildOutcome::End::Signalled)
        throw HealthCheckFailed("smoke", "check smoke: `" + command + "` was killed by signal " + std::to_string(child.code) +
                                             " (" + strsignal(child.code) + ")");
    return child.code;
}

bool sameComponentVersion(std::string_view reported, std::string_view expected)
{
    const auto bare = [](std::string_view v) { return v.starts_with('v') ? v.substr(1) : v; };
    return !expected.empty() && bare(reported) == bare(expected);
}

ExecutableIdentity executableIdentity(const std::string& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw std::system_error(errno, std::generic_category(), "cannot stat " + path);
    return {path, st.st_dev, st.st_ino};
}

Task<void> runHealthCheck(EngineApi& engine, UnitControl& units, boost::asio::thread_pool& pool,
                          const HealthExpectations& expect, HealthProgress progress)
{
    auto deadline = Clock::now() + expect.timeout;

    report(progress, "waiting for /_ping on " + expect.socketPath);
    co_await checkPing(engine, units, expect, deadline);

    if (!expect.keptRunning.empty()) {
        report(progress, "checking that " + std::to_string(expect.keptRunning.size()) + " container(s) kept running");
        co_await checkKeptRunning(engine, expect, deadline);
    }

    if (!expect.expectedVersion.empty()) {
        report(progress, "checking version");
        co_await checkVersion(engine, expect, deadline);
    }

    if (!expect.components.empty()) {
        std::string names;
        for (const auto& c : expect.components)
            names += (names.empty() ? "" : ", ") + c.name + " " + c.version;
        report(progress, "checking that the engine uses " + names);
        co_await checkComponents(engine, expect, deadline);
    }

    if (expect.expectedInitSha1) {
        report(progress, "checking InitSha1");
        co_await checkInitSha1(engine, expect, deadline);
    }

    if (expect.expectedExe) {
        report(progress, "checking that " + expect.serviceUnit + " runs " + expect.expectedExe->path);
        co_await checkMainExe(units, expect, expect.serviceUnit, *expect.expectedExe);
    }
    for (const auto& [unit, exe] : expect.otherExes) {
        report(progress, "checking that " + unit + " runs " + exe.path);
        co_await checkMainExe(units, expect, unit, exe);
    }

    if (expect.grace.count() > 0) {
        report(progress, "grace period " + formatDuration(expect.grace));
        co_await checkGrace(engine, units, expect);
        deadline += expect.grace;
    }

    if (!expect.containersBack.empty()) {
        report(progress, "waiting for " + std::to_string(expect.containersBack.size()) + " container(s) to run again");
        co_await waitForContainers(engine, expect, deadline);
    }

    if (!expect.smokeCommand.empty()) {
        report(progress, "running smoke command");
        co_await checkSmoke(pool, expect, deadline);
    }
}

}  // namespace armdock
