// spdlog to the journal when running under systemd (JOURNAL_STREAM or
// INVOCATION_ID set), to stderr otherwise. Journal entries carry structured
// fields: ARMDOCK_TRANSACTION and ARMDOCK_STATE from the current LogContext,
// plus SYSLOG_IDENTIFIER=armdock-agent and PRIORITY.
#pragma once

#include <string>

namespace armdock {

// Throws ConfigError for an unknown level name.
void setUpLogging(const std::string& level);
void setLogLevel(const std::string& level);

// The transaction and state that log lines are about (set by the agent on the loop).
struct LogContext {
    static void set(const std::string& transaction, const std::string& state);
    static std::string transaction();
    static std::string state();
};

}  // namespace armdock
