// What `armdockctl status` shows of the package manager beside each
// payload: the package that owns its target, its diversion, whether the
// package is held, and what would replace or restart it by itself.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config.hpp"
#include "package_owner.hpp"

namespace armdock {

struct PayloadPackage {
    std::string payload;
    std::filesystem::path target;
    PackageOwnership owner;
    bool held = false;  // every owning package is held
    std::vector<std::string> warnings;
};

struct PackageReport {
    std::vector<PayloadPackage> payloads;  // in the config's order
    std::vector<std::string> hostWarnings;  // needrestart: about the host, not one payload
};

// Reads dpkg's database and apt's and needrestart's configuration under
// `root` (blocking: off the loop).
PackageReport describePayloadPackages(const std::filesystem::path& root, const std::vector<PayloadSpec>& payloads);

}  // namespace armdock
