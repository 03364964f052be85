#include "exit_codes.hpp"

#include "core/errors.hpp"
#include "core/vocabulary.hpp"

namespace armdock::cli {

namespace {

std::string busWords(const std::string& busSetting)
{
    if (busSetting == "system" || busSetting == "user")
        return "the " + busSetting + " bus";
    return "the bus at " + busSetting;
}

bool startsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

std::string startHint(const std::string& busSetting)
{
    return busSetting == "user" ? "systemctl --user start armdock-agent" : "systemctl start armdock-agent";
}

CliError fromDbusError(const sdbus::Error& error, const std::string& busSetting)
{
    const std::string name = error.getName();
    const std::string message = error.getMessage();
    if (name == dbusErrorName(ErrorKind::Busy))
        return {exitBusy, message};
    if (name == dbusErrorName(ErrorKind::InvalidArgument) || name == dbusErrorName(ErrorKind::PayloadRejected) ||
        name == dbusErrorName(ErrorKind::NoBackup))
        return {exitRejected, message};
    if (name == dbusErrorName(ErrorKind::AccessDenied))
        return {exitAccessDenied, message};
    if (name == dbusErrorName(ErrorKind::Failed))
        return {exitFailed, message};
    if (name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner")
        return {exitNotRunning, "armdock-agent is not running on " + busWords(busSetting) +
                                    " (nobody owns io.armdock.Agent1); start it with: " + startHint(busSetting)};
    if (name == "org.freedesktop.DBus.Error.AccessDenied")
        return {exitAccessDenied, "the bus refused the call (only root and members of allowed_groups may call "
                                  "armdock-agent's methods; anyone may read its status): " + message};
    if (name == "org.freedesktop.DBus.Error.NoReply" || name == "org.freedesktop.DBus.Error.Timeout")
        return {exitFailed, "armdock-agent did not answer in time (" + message + "); see journalctl -u armdock-agent"};
    if (startsWith(name, "org.freedesktop.DBus.Error.Unknown"))
        return {exitFailed, "armdock-agent on " + busWords(busSetting) + " does not offer this call (" + message +
                                "); is it older than armdockctl?"};
    if (name == "org.sdbuscpp.Error" || startsWith(name, "System.Error."))
        return {exitNotRunning, "cannot talk to " + busWords(busSetting) + ": " + message + "; is armdock-agent running? Start it with: " +
                                    startHint(busSetting)};
    return {exitFailed, message.empty() ? name : message};
}

ExitCode exitCodeOfResult(const std::string& result)
{
    switch (fromString<TransactionResult>(result).value_or(TransactionResult::Failed)) {
    case TransactionResult::Success:
        return exitSuccess;
    case TransactionResult::RolledBack:
        return exitRolledBack;
    case TransactionResult::Rejected:
        return exitRejected;
    case TransactionResult::Cancelled:
        return exitCancelled;
    case TransactionResult::None:
    case TransactionResult::Failed:
        break;
    }
    return exitFailed;
}

}  // namespace armdock::cli
