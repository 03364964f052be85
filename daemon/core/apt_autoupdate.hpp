// Whatever on the host upgrades packages or restarts services by itself,
// read from its configuration under a root: unattended-upgrades (apt's
// APT::Periodic::Unattended-Upgrade and its Package-Blacklist) and
// needrestart ($nrconf{restart}, $nrconf{override_rc}). Each answer is a
// warning for `armdockctl status`, "" when there is nothing to say. Small
// file reads: run off the event loop with the dpkg database reads.
#pragma once

#include <filesystem>
#include <string>

namespace armdock {

// "" unless unattended-upgrades is installed and on, and `package` (not held)
// is not in its Package-Blacklist: then what it would do and the fix.
std::string unattendedUpgradeWarning(const std::filesystem::path& root, const std::string& package, bool held);

// "" unless needrestart is installed, restarts services (not $nrconf{restart}
// = 'l') and containerd is not in its override_rc: then what it would do and the fix.
std::string needrestartWarning(const std::filesystem::path& root);

}  // namespace armdock
