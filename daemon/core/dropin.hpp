// The drop-in folder: an operator copies new binaries there, named after
// their payload ("docker", "dockerinit"), optionally with "NAME.sha256"
// and "NAME.minisig" (its minisign signature) beside them, then runs `systemctl reload armdock-agent`. Hidden files
// (uploads in progress) are left alone. Whatever the outcome, the folder is
// emptied: accepted files are removed after the transaction, refused ones are
// moved aside into <state_dir>/rejected/ with a .reason file.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"

namespace armdock {

struct DropinScan {
    std::map<std::string, std::string> files;   // payload name -> path in the folder
    std::map<std::string, std::string> sha256;  // payload name -> digest from NAME.sha256
    std::map<std::string, std::string> signatures;  // payload name -> the text of NAME.minisig
    std::vector<std::filesystem::path> taken;   // every file the scan claimed (payloads, digests, signatures)
    std::vector<std::pair<std::filesystem::path, std::string>> refused;  // file, reason
};

DropinScan scanDropinFolder(const std::filesystem::path& dir, const Config& config);

// Moves `file` into rejectedDir as <time>-<name> with <time>-<name>.reason
// beside it; returns the new path. Falls back to copy+unlink across filesystems.
std::filesystem::path moveAside(const std::filesystem::path& file, const std::filesystem::path& rejectedDir, const std::string& reason);

}  // namespace armdock
