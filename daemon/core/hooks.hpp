// The [hooks] programs around an upgrade that stops the engine: what each
// is given and what its failure means. before_stop runs once the new set is
// verified, staged and backed up, before anything stops; its failure refuses
// the upgrade with nothing changed. Once the engine was stopped, exactly one
// after hook runs when the transaction ends: after_success when it
// committed, after_rollback otherwise (ARMDOCK_RESULT says rolled-back,
// failed or cancelled), so a node drained by before_stop is always told.
// An after hook's failure is logged and shown, never rolled back.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "vocabulary.hpp"

namespace armdock {

enum class HookPoint { BeforeStop, AfterSuccess, AfterRollback };

template <>
struct Words<HookPoint> {
    using enum HookPoint;
    static constexpr std::array<Word<HookPoint>, 3> table{{{BeforeStop, "before_stop"}, {AfterSuccess, "after_success"}, {AfterRollback, "after_rollback"}}};
};
static_assert(tableIsWhole<HookPoint>(3));

// What a hook finds in its environment (besides PATH): ARMDOCK_HOOK,
// ARMDOCK_TRANSACTION, ARMDOCK_OLD_VERSION, ARMDOCK_NEW_VERSION, and for
// the after hooks ARMDOCK_RESULT and ARMDOCK_MESSAGE.
struct HookContext {
    std::string transaction;
    std::string oldVersion;  // the engine installed before the transaction
    std::string newVersion;  // the engine the upgrade installs
    std::string result;      // after hooks: success, rolled-back, failed, cancelled
    std::string message;     // after hooks: the transaction's message
};

std::vector<std::string> hookEnvironment(HookPoint point, const HookContext& context);

// Runs the hook's command (absolute program and arguments) for at most
// `timeout`, then kills its process group. Returns "" when it exited 0,
// else a message naming the hook, the command, how it ended (status,
// signal, timeout, could not start) and its output's last line. Blocking:
// call it off the loop.
std::string runHook(HookPoint point, const std::vector<std::string>& command, std::chrono::milliseconds timeout, const HookContext& context);

}  // namespace armdock
