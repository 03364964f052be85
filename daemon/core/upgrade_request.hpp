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

// Upgrade names each source by its path; UpgradeFds passes open descriptors,
// and `files` then maps each payload to the label its messages show.
enum class SourceForm { Paths, Descriptors };

struct UpgradeRequest {
    std::map<std::string, std::string> files;   // payload name -> absolute source path (Descriptors: its label)
    std::map<std::string, std::string> sha256;  // payload name -> expected digest (lower-case hex)
    std::map<std::string, std::string> signatures;  // payload name -> its minisign signature (the .minisig text)
    bool allowDowngrade = false;  // a signed engine older than [trust] min_version may be installed
    bool dryRun = false;
    std::optional<unsigned> healthTimeoutSec;
};

// Throws AgentError(InvalidArgument) naming the key: empty files map, unknown
// payload name, relative path, unknown option, option of the wrong type,
// sha256.<name> for a payload not in files, a digest that is not 64 hex
// digits, health_timeout_sec of 0, signature.<name> for a payload not in
// files or longer than a minisign signature (its content is checked later,
// core/payload_signature.hpp). With SourceForm::Descriptors the paths are
// labels ("fd:docker") and need not be absolute, and option source.<name> (s)
// replaces a payload's label with the path the client opened (for messages only).
UpgradeRequest parseUpgradeRequest(const std::map<std::string, std::string>& files,
                                   const std::map<std::string, OptionValue>& options, const Config& config,
                                   SourceForm form = SourceForm::Paths);

}  // namespace armdock
