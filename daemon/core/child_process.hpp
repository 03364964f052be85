// The one way the agent runs a program (the engine's version probe, the smoke
// command): stdin from /dev/null, stdout and stderr into one pipe (the first
// outputLimit bytes kept; the rest read and dropped so a chatty child never
// blocks), no descriptor of the agent's (closefrom), an explicit environment
// (childPath only), default signal dispositions and an empty signal mask, a
// process group of its own, and at the deadline SIGKILL to the whole group.
// Blocking: called off the loop (runOffLoop).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <system_error>
#include <vector>

namespace armdock {

// The child's whole environment. A bare program name is looked up here too.
inline constexpr const char* childPath = "/usr/sbin:/usr/bin:/sbin:/bin";

struct ChildOutcome {
    enum class End { Exited, Signalled, TimedOut };
    End end = End::Exited;
    int code = 0;               // exit status (Exited; -1 when it was lost) or signal number (Signalled)
    bool outputClosed = false;  // TimedOut: the child had closed its output and lingered
    std::string output;         // stdout and stderr, interleaved, capped
};

// Runs argv until the child exits or `timeout` passes (then kills its group).
// The child's exit ends the wait, also when a grandchild keeps the pipe open.
// `environment` ("NAME=value") is given to the child after PATH.
// Throws std::system_error ("cannot run PROGRAM: why") when it cannot start.
ChildOutcome runChild(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                      std::size_t outputLimit = 64 * 1024, const std::vector<std::string>& environment = {});

// "prog arg1 arg2": a command as messages show it.
std::string joinCommand(const std::vector<std::string>& argv);
// The last non-empty line of a child's output, at most 200 characters: what a message quotes.
std::string lastLine(std::string text);

}  // namespace armdock
