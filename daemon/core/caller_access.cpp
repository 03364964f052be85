#include "caller_access.hpp"

#include <grp.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "config.hpp"

namespace armdock {

namespace {

std::optional<gid_t> numericGid(const std::string& name)
{
    std::uint64_t value = 0;
    auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), value);
    if (name.empty() || error != std::errc() || end != name.data() + name.size())
        return std::nullopt;
    // (gid_t)-1 means "no group" to the kernel, so it is never a member's gid.
    if (value >= std::numeric_limits<gid_t>::max())
        return std::nullopt;
    return static_cast<gid_t>(value);
}

// Reads the group file itself (fgetgrent) so that no NSS module is loaded.
// fgetgrent is not reentrant; this runs only while loading a config.
std::map<std::string, gid_t> readGroupFile(const std::filesystem::path& groupFile)
{
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(groupFile.c_str(), "re"), &std::fclose);
    if (!file)
        throw ConfigError("agent.allowed_groups: cannot read " + groupFile.string() + " (" + std::strerror(errno) + ")");
    std::map<std::string, gid_t> groups;
    while (struct group* entry = ::fgetgrent(file.get()))
        groups.emplace(entry->gr_name, entry->gr_gid);
    return groups;
}

}  // namespace

std::vector<gid_t> resolveAllowedGroups(const std::vector<std::string>& names, const std::filesystem::path& groupFile)
{
    std::vector<gid_t> gids;
    bool allNumeric = std::all_of(names.begin(), names.end(), [](const std::string& n) { return numericGid(n).has_value(); });
    std::map<std::string, gid_t> groups;
    if (!allNumeric)
        groups = readGroupFile(groupFile);
    for (const auto& name : names) {
        if (auto gid = numericGid(name)) {
            gids.push_back(*gid);
            continue;
        }
        auto found = groups.find(name);
        if (found == groups.end())
            throw ConfigError("agent.allowed_groups: group \"" + name + "\" is not in " + groupFile.string()
                              + "; add the group or give its numeric gid");
        gids.push_back(found->second);
    }
    return gids;
}

bool callerMayCall(uid_t uid, gid_t primaryGid, const std::vector<gid_t>& supplementaryGids,
                   const std::vector<gid_t>& allowedGids)
{
    if (uid == 0)
        return true;
    auto allowed = [&](gid_t gid) { return std::find(allowedGids.begin(), allowedGids.end(), gid) != allowedGids.end(); };
    return allowed(primaryGid) || std::any_of(supplementaryGids.begin(), supplementaryGids.end(), allowed);
}

}  // namespace armdock
