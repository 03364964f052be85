// An Upgrade call's arguments, checked against the config before anything
// runs. The D-Bus glue turns a{sv} into OptionValues; this file decides.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>

#include "config.hpp"

namespace armdock {

struct UnsupportedOptionType {
    std::string signature;  // D-Bus signature of the value that was given
};
using OptionValue = std::variant<bool, std::uint32_t, std::string, UnsupportedOptionType>;

struct UpgradeRequest {
    std::map<std::string, std::string> files;   // payload name -> absolute source path
    std::map<std::string, std::string> sha256;  // payload name -> expected digest (lower-case hex)
    bool dryRun = false;
    std::optional<unsigned> healthTimeoutSec;
};

// Throws AgentError(InvalidArgument) naming the key: empty files map, unknown
// payload name, relative path, unknown option, option of the wrong type,
// sha256.<name> for a payload not in files, a digest that is not 64 hex
// digits, health_timeout_sec of 0.
UpgradeRequest parseUpgradeRequest(const std::map<std::string, std::string>& files,
                                   const std::map<std::string, OptionValue>& options, const Config& config);

}  // namespace armdock
