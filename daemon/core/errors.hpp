// The one table of named errors that leave the agent (D-Bus error names and
// the words LastResult uses). Every failure inside the agent is converted to
// an AgentError before it crosses the bus.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace armdock {

enum class ErrorKind {
    Busy,             // another transaction runs
    InvalidArgument,  // the request itself is malformed (unknown payload, relative path, bad option)
    PayloadRejected,  // a source file failed verification
    AccessDenied,     // the caller is neither root nor in allowed_groups
    NoBackup,         // Rollback() with no backup set that differs from the installed one
    Failed,           // anything else; the message says what and what to do
};

// "io.armdock.Agent1.Error.Busy" and so on.
std::string dbusErrorName(ErrorKind kind);

class AgentError : public std::runtime_error {
public:
    AgentError(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const noexcept { return kind_; }

private:
    ErrorKind kind_;
};

}  // namespace armdock
