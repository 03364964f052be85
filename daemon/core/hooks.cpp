#include "core/hooks.hpp"

#include <cstring>
#include <system_error>

#include "core/child_process.hpp"

namespace armdock {

std::vector<std::string> hookEnvironment(HookPoint point, const HookContext& context)
{
    std::vector<std::string> env{"ARMDOCK_HOOK=" + std::string(str(point)), "ARMDOCK_TRANSACTION=" + context.transaction,
                                 "ARMDOCK_OLD_VERSION=" + context.oldVersion, "ARMDOCK_NEW_VERSION=" + context.newVersion};
    if (point != HookPoint::BeforeStop) {
        env.push_back("ARMDOCK_RESULT=" + context.result);
        env.push_back("ARMDOCK_MESSAGE=" + context.message);
    }
    return env;
}

std::string runHook(HookPoint point, const std::vector<std::string>& command, std::chrono::milliseconds timeout, const HookContext& context)
{
    const std::string what = "hook " + std::string(str(point)) + " `" + joinCommand(command) + "`";
    ChildOutcome child;
    try {
        child = runChild(command, timeout, 64 * 1024, hookEnvironment(point, context));
    } catch (const std::system_error& e) {
        return what + " could not start: " + e.what() + "; fix hooks." + std::string(str(point)) + " in the config";
    }
    const std::string line = lastLine(child.output);
    const std::string said = line.empty() ? "" : " (it said: " + line + ")";
    switch (child.end) {
    case ChildOutcome::End::TimedOut:
        return what + " did not finish within " + std::to_string(timeout.count() / 1000) + " s and was killed" + said +
               "; run it by hand to see where it hangs, or raise hooks.timeout_sec";
    case ChildOutcome::End::Signalled:
        return what + " was killed by signal " + std::to_string(child.code) + " (" + strsignal(child.code) + ")" + said;
    case ChildOutcome::End::Exited:
        break;
    }
    if (child.code == 0)
        return "";
    return what + " exited with status " + std::to_string(child.code) + said + "; run it by hand, with the ARMDOCK_ variables "
           "armdock-agent.toml(5) lists under [hooks], to see why";
}

}  // namespace armdock
