// Who may call methods: root, or a member of one of allowed_groups. Groups are
// resolved from /etc/group with fgetgrent (no NSS: a static binary must never
// load the host's NSS modules); numeric gids are accepted as they are.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace armdock {

// Throws ConfigError naming a group that is neither numeric nor in groupFile.
std::vector<gid_t> resolveAllowedGroups(const std::vector<std::string>& names,
                                        const std::filesystem::path& groupFile = "/etc/group");

bool callerMayCall(uid_t uid, gid_t primaryGid, const std::vector<gid_t>& supplementaryGids,
                   const std::vector<gid_t>& allowedGids);

}  // namespace armdock
