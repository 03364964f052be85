// Which Debian package owns a payload's target, read from dpkg's own
// database (ROOT/var/lib/dpkg: each package's info/PKG.list and the
// diversions file), with no network and no child process. A target a
// package owns is put back by that package's next upgrade (`apt-get
// upgrade`, unattended-upgrades) unless dpkg diverts it. Blocking file
// reads (a few MB on a full system): run off the event loop.
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace armdock {

struct PackageOwnership {
    std::vector<std::string> packages;  // the packages whose file list names the target (empty: none)
    std::string listedAs;               // the path as dpkg knows it ("/usr/bin/docker", below the root)
    std::string divertedTo;             // a diversion's other name ("" when the target is not diverted)
    std::string divertedBy;             // "local" (dpkg-divert --local) or the package that diverts it
    bool diverted() const { return !divertedTo.empty(); }
};

// The ownership of each target, keyed by the target as given. `root` is
// dpkg's --root: a target outside it is owned by nothing; inside, it is
// looked up as the path below it, under its merged-/usr name too (/bin/x and
// /usr/bin/x are one file on Debian 12). A root without a dpkg database owns
// nothing. Throws std::runtime_error naming the file that cannot be read.
std::map<std::filesystem::path, PackageOwnership> findPackageOwners(const std::filesystem::path& root,
                                                                    const std::vector<std::filesystem::path>& targets);

// The packages dpkg's status file (ROOT/var/lib/dpkg/status) marks "hold"
// (`apt-mark hold`, `dpkg --set-selections`): apt and unattended-upgrades
// leave them as they are.
std::set<std::string> heldPackages(const std::filesystem::path& root);

}  // namespace armdock
