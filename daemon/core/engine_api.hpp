// The seam between the agent and the Docker engine's HTTP API on its unix
// socket. The real implementation (daemon/docker/docker_client.*) uses
// Boost.Beast; tests may use a fake. Each call throws EngineUnreachable on
// connect/IO failure or timeout, with a message naming the socket.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "async.hpp"
#include "container_summary.hpp"

namespace armdock {

class EngineUnreachable : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class EngineApi {
public:
    virtual ~EngineApi() = default;

    // GET /_ping; true when the body is "OK". With a socket-activated engine
    // the connect succeeds at once and the answer comes as soon as the engine
    // serves, so one call detects readiness without polling; when the socket
    // does not exist yet (ENOENT/ECONNREFUSED) it retries every few ms until
    // `timeout`.
    virtual Task<bool> ping(std::chrono::milliseconds timeout) = 0;
    // GET /version -> "Version".
    virtual Task<std::string> version(std::chrono::milliseconds timeout) = 0;
    // GET /version -> "Components" other than "Engine" (containerd, runc,
    // docker-init), as the engine learns them now: containerd over its API,
    // runc and docker-init by running them. [] when not reported.
    virtual Task<std::vector<ComponentVersion>> components(std::chrono::milliseconds timeout) = 0;
    // GET /info -> "InitSha1" when present and not empty (Docker 1.10).
    virtual Task<std::optional<std::string>> initSha1(std::chrono::milliseconds timeout) = 0;
    // GET /containers/json?all=1 plus each container's HostConfig.RestartPolicy and State.Pid.
    virtual Task<std::vector<ContainerSummary>> containers(std::chrono::milliseconds timeout) = 0;
    // GET /info -> LiveRestoreEnabled and Swarm.LocalNodeState.
    virtual Task<LiveRestoreInfo> liveRestore(std::chrono::milliseconds timeout) = 0;
};

}  // namespace armdock
