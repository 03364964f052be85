// Pure parsers of the Docker engine's JSON answers (/version, /info,
// /containers/json, /containers/{id}/json and error bodies). No I/O and no
// Asio: unit-tested against real answers and fuzzed (tests/fuzz). Each parser
// throws std::invalid_argument with a short reason on malformed input.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/container_summary.hpp"

namespace armdock {

std::string parseVersionBody(std::string_view json);                 // "Version"
// "Components" besides the "Engine" entry, in the engine's order; [] when absent (Docker 1.10).
std::vector<ComponentVersion> parseComponentsBody(std::string_view json);
std::optional<std::string> parseInitSha1Body(std::string_view json);  // "InitSha1"
std::vector<ContainerSummary> parseContainerList(std::string_view json);
std::string parseRestartPolicy(std::string_view inspectJson);  // HostConfig.RestartPolicy.Name
std::string parseInspectState(std::string_view inspectJson);   // State.Status ("running", ...), "" when absent
int parseInspectPid(std::string_view inspectJson);             // State.Pid, 0 when absent
LiveRestoreInfo parseLiveRestoreInfo(std::string_view infoJson);  // LiveRestoreEnabled, Swarm.LocalNodeState

// "HTTP 404: No such container: x" from Docker's {"message": "..."} bodies,
// or the start of a short plain body. Never throws on a bad body.
std::string describeErrorAnswer(unsigned status, std::string_view body);

// Container ids from the engine are hex; anything else must not reach a URL.
bool isSafeContainerId(std::string_view id);

}  // namespace armdock
