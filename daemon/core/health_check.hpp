// Step 6 of a transaction (checking). Throws HealthCheckFailed naming the
// check that failed and what to do; returns when every check passed.
//   ping      the socket answers GET /_ping with OK within `timeout`
//   version   GET /version reports expectedVersion
//   initsha1  where /info reports InitSha1, it equals expectedInitSha1
//   components  for each changed payload with a component, /version's
//             Components report the version its new file printed (containerd,
//             runc, docker-init: what the engine uses now, not what it used)
//   exe       the service's main process runs expectedExe (/proc/PID/exe has
//             its device and inode): the file just installed, not an old process
//   grace     for `grace`, the unit stays active with the same main PID and
//             the ping keeps answering (checked every 100 ms)
//   containers  every container in `containersBack` (those that ran with a
//             restart policy before the stop) runs again within the
//             remaining timeout
//   smoke     the smoke command exits 0 (run off the loop, killed at the timeout)
#pragma once

#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <sys/types.h>
#include <string>
#include <string_view>
#include <vector>

#include "async.hpp"
#include "engine_api.hpp"
#include "unit_control.hpp"

namespace armdock {

class HealthCheckFailed : public std::runtime_error {
public:
    HealthCheckFailed(const std::string& check, const std::string& message) : std::runtime_error(message), check_(check) {}
    const std::string& check() const noexcept { return check_; }

private:
    std::string check_;
};

// Thrown between two probes when HealthExpectations::cancelled says so.
class HealthCheckCancelled : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Which file a path is, as the kernel knows it (links followed).
struct ExecutableIdentity {
    std::string path;  // for messages
    dev_t device = 0;
    ino_t inode = 0;
};

// stat() of `path`; throws std::system_error naming it.
ExecutableIdentity executableIdentity(const std::string& path);

// A part of the engine set whose new file printed `version`; /version's
// Components must report the same under `name`.
struct ExpectedComponent {
    std::string name;     // "containerd"
    std::string version;  // "1.6.20~ds1", from `path --version`
    std::string payload;  // for messages
    std::string path;
};

// "v1.7.0" and "1.7.0" are one version: containerd reports the "v" its --version may drop.
bool sameComponentVersion(std::string_view reported, std::string_view expected);

struct HealthExpectations {
    std::string serviceUnit;
    std::string socketPath;  // for messages
    std::string expectedVersion;  // empty: not checked
    std::optional<std::string> expectedInitSha1;
    std::optional<ExecutableIdentity> expectedExe;  // empty: not checked
    // Other restarted services and the file each main process must run
    // (containerd.service after a new containerd).
    std::vector<std::pair<std::string, ExecutableIdentity>> otherExes;
    std::vector<ExpectedComponent> components;
    std::chrono::milliseconds timeout{60000};  // from the start job's end to a passing check
    std::chrono::milliseconds grace{5000};
    std::vector<std::string> smokeCommand;
    std::vector<ContainerSummary> containersBack;  // seen running before the stop; must run again
    std::vector<KeptContainer> keptRunning;        // live-restore: each must still run in the same process
    // Asked before every probe (ping, version, grace tick, container poll;
    // not while the smoke command runs): true ends the check with
    // HealthCheckCancelled. Empty: the check cannot be cancelled.
    std::function<bool()> cancelled;
};

// Progress callback: a one-line message per sub-check ("waiting for /_ping", ...).
using HealthProgress = std::function<void(const std::string&)>;

Task<void> runHealthCheck(EngineApi& engine, UnitControl& units, boost::asio::thread_pool& pool,
                          const HealthExpectations& expect, HealthProgress progress);

// Runs argv off the loop; returns exit status (or throws HealthCheckFailed("smoke", ...)
// when it cannot start, is killed, or exceeds timeout).
// Waits until every container of `expect.containersBack` runs again, polling
// GET /containers/json; throws HealthCheckFailed("containers", ...) naming each
// missing one at `deadline`. Also used by the monitor after its own restart.
Task<void> waitForContainers(EngineApi& engine, const HealthExpectations& expect, std::chrono::steady_clock::time_point deadline);

// Running containers whose restart policy brings them back with the engine
// ("always", "unless-stopped"): what a planned restart must not lose.
std::vector<ContainerSummary> containersExpectedBack(const std::vector<ContainerSummary>& all);

int runCommandWithTimeout(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, std::string* output);

}  // namespace armdock
