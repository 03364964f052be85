// What the engine reports of its containers and its parts: what the health
// check compares before and after an upgrade. Plain data, no Asio (the fuzz
// build uses it).
#pragma once

#include <string>

namespace armdock {

// A container seen running before an engine restart with live-restore on:
// after the restart the same process must still run it.
struct KeptContainer {
    std::string id;
    std::string name;
    int pid = 0;
    unsigned long long startTime = 0;  // /proc/PID/stat field 22
};

// What /info says of live-restore: with it on and outside a Swarm, an engine
// restart leaves the containers running (moby's documented behaviour).
struct LiveRestoreInfo {
    bool enabled = false;  // LiveRestoreEnabled
    bool swarm = false;    // Swarm.LocalNodeState is neither "inactive" nor absent
};

// One entry of /version's Components: {"Name": "containerd", "Version": "1.6.20~ds1"}.
struct ComponentVersion {
    std::string name;
    std::string version;
    bool operator==(const ComponentVersion&) const = default;
};

struct ContainerSummary {
    std::string id;
    std::string name;
    std::string state;          // "running", "exited", ...
    std::string restartPolicy;  // "always", "unless-stopped", "on-failure", "no", "" when unknown
    int pid = 0;                // State.Pid: its main process, 0 when not running or unknown
};

}  // namespace armdock
