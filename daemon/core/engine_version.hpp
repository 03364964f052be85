// Learns a payload's version by running it with its version arguments
// (`docker -v` prints "Docker version 1.10.2, build c3959b1"), and the
// dockerinit pairing rule of Docker 1.10. Blocking: run off the event loop.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace armdock {

// The version a program prints: the one after the word "version"
// ("Docker version 20.10.24+dfsg1, build 5d6db84" -> "20.10.24+dfsg1",
// "runc version 1.1.5+ds1", "tini version 0.19.0 - git.de40ad0"), else the
// first word that is one ("containerd github.com/containerd/containerd
// 1.6.20~ds1 ..."); a leading "v" is dropped. nullopt when none.
std::optional<std::string> parseProgramVersion(std::string_view output);

// The release line of a version, its first two numbers ("20.10" of
// "20.10.24+dfsg1", "1.10" of "1.10.3"); "" when it has none.
std::string releaseLine(std::string_view version);

// Runs `binary args...` with an empty environment (PATH=/usr/sbin:/usr/bin:/sbin:/bin),
// stdin from /dev/null, collects stdout+stderr (at most 64 KiB), kills it
// after `timeout`. Throws AgentError(PayloadRejected) naming the binary when
// it cannot run, times out, exits non-zero or prints no version.
std::string learnEngineVersion(const std::filesystem::path& binary, const std::vector<std::string>& args,
                               std::chrono::milliseconds timeout);

// True if the file contains `text` (streamed, no full read into memory).
bool fileContainsText(const std::filesystem::path& file, std::string_view text);

}  // namespace armdock
