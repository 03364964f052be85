#include "payload_packages.hpp"

#include "apt_autoupdate.hpp"

namespace armdock {

PackageReport describePayloadPackages(const std::filesystem::path& root, const std::vector<PayloadSpec>& payloads)
{
    std::vector<std::filesystem::path> targets;
    for (const auto& p : payloads)
        targets.push_back(p.path);
    const auto owners = findPackageOwners(root, targets);
    const auto held = heldPackages(root);
    PackageReport report;
    for (const auto& p : payloads) {
        PayloadPackage row{p.name, p.path, owners.at(p.path), false, {}};
        if (!row.owner.packages.empty()) {
            row.held = true;
            for (const auto& package : row.owner.packages)
                row.held = row.held && held.contains(package);
            if (!row.owner.diverted())
                row.warnings.push_back("the next upgrade of " + row.owner.packages.front() + " puts its own " + row.owner.listedAs +
                                       " back over the agent's (it is not diverted)");
            for (const auto& package : row.owner.packages)
                if (const std::string w = unattendedUpgradeWarning(root, package, held.contains(package)); !w.empty())
                    row.warnings.push_back(w);
        }
        report.payloads.push_back(std::move(row));
    }
    if (const std::string w = needrestartWarning(root); !w.empty())
        report.hostWarnings.push_back(w);
    return report;
}

}  // namespace armdock
