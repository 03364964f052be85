#include "errors.hpp"

namespace armdock {

std::string dbusErrorName(ErrorKind kind)
{
    constexpr std::string_view prefix = "io.armdock.Agent1.Error.";
    std::string_view name;
    switch (kind) {
    case ErrorKind::Busy: name = "Busy"; break;
    case ErrorKind::InvalidArgument: name = "InvalidArgument"; break;
    case ErrorKind::PayloadRejected: name = "PayloadRejected"; break;
    case ErrorKind::AccessDenied: name = "AccessDenied"; break;
    case ErrorKind::NoBackup: name = "NoBackup"; break;
    case ErrorKind::Failed: name = "Failed"; break;
    }
    return std::string(prefix) + std::string(name);
}

}  // namespace armdock
