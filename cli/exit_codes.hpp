// armdockctl's exit codes (documented in armdockctl(1) and README.md) and
// the one place where an agent or bus error becomes one of them and a line
// a person can act on.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <stdexcept>
#include <string>

namespace armdock::cli {

enum ExitCode : int {
    exitSuccess = 0,
    exitFailed = 1,        // the transaction failed and so did its rollback, or the agent failed the call
    exitUsage = 2,         // bad command line
    exitRolledBack = 3,    // the new engine failed its checks; the previous one runs again
    exitRejected = 4,      // the agent refused the input before anything changed (also: no backup to roll back to)
    exitBusy = 5,          // another transaction runs
    exitAccessDenied = 6,  // the caller may not call methods (root or allowed_groups only)
    exitNotRunning = 7,    // the agent is not on the bus (or the bus is not there), or it went away while waited for
    exitCancelled = 8,     // the transaction was cancelled
    exitTimedOut = 9,      // --timeout passed; the transaction goes on
    exitInterrupted = 130, // SIGINT/SIGTERM while waiting; the transaction goes on
};

// An outcome that ends the command: its exit code and the line to print.
class CliError : public std::runtime_error {
public:
    CliError(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ExitCode code() const noexcept { return code_; }

private:
    ExitCode code_;
};

// A D-Bus error from a call to the agent, for the bus named by `busSetting`
// ("system", "user" or an address): the agent's own message for its named
// errors, plain words (and how to start the agent) for the bus's errors.
CliError fromDbusError(const sdbus::Error& error, const std::string& busSetting);

// "systemctl start armdock-agent" or "systemctl --user start armdock-agent".
std::string startHint(const std::string& busSetting);

// The exit code of a transaction's result ("success", "rolled-back", ...).
ExitCode exitCodeOfResult(const std::string& result);

}  // namespace armdock::cli
