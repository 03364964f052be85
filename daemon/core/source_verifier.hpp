// Step 1 of a transaction (verifying): opens a source file once, safely, and
// refuses anything that is not a root-owned, not group/world-writable,
// non-empty regular ELF executable for this machine. The caller works only on
// the returned descriptor afterwards (no TOCTOU). A descriptor the client
// opened (UpgradeFds) gets the same checks.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "elf_check.hpp"
#include "unique_fd.hpp"

namespace armdock {

// A folder the agent's own unit hides from it (PrivateTmp=, ProtectHome=):
// a path there that the agent cannot find is explained, not just "missing".
struct HiddenFolder {
    std::string folder;     // "/tmp"
    std::string directive;  // "PrivateTmp=yes"
};

// The folders of /tmp, /var/tmp (PrivateTmp=yes) and /home, /root, /run/user
// (ProtectHome=yes) that the mount table (/proc/self/mountinfo's text) shows
// replaced by systemd: a systemd-private-* bind on /tmp, an "inaccessible"
// node on /home.
std::vector<HiddenFolder> hiddenFoldersIn(std::string_view mountinfo);
// The same for this process, read once (the unit's mounts are made before
// the agent starts); empty when /proc/self/mountinfo cannot be read.
const std::vector<HiddenFolder>& hiddenFoldersOfThisProcess();

struct SourceRules {
    uid_t requiredOwner = 0;
    std::uint16_t elfMachine = hostElfMachine();
    std::vector<HiddenFolder> hiddenFolders = hiddenFoldersOfThisProcess();
};

struct OpenedSource {
    std::string payloadName;
    std::string path;
    UniqueFd fd;
    struct stat st {};
};

// Throws AgentError: InvalidArgument for a path that is not absolute;
// PayloadRejected (message names the payload and the file, and says what to
// do) for: missing file, a symlink in any component (each component is opened
// with O_NOFOLLOW, so this works on kernels without openat2), a directory, a
// FIFO or anything not regular (opened with O_NONBLOCK so a FIFO never
// blocks), wrong owner, group- or world-writable, empty, not an ELF
// executable for rules.elfMachine. InvalidArgument, saying which directive
// hides it and what to do, for a path that is missing because it lies in one
// of rules.hiddenFolders.
OpenedSource openAndCheckSource(const std::string& payloadName, const std::string& path, const SourceRules& rules);

// The same checks on a descriptor the client opened and passed over D-Bus
// (UpgradeFds): `label` stands for the path in every message ("fd:docker", or
// the path the client named). Takes the descriptor (the agent's own dup of it)
// and marks it close-on-exec. Also PayloadRejected for a descriptor that was
// not opened read-only (O_WRONLY, O_RDWR, O_PATH).
OpenedSource checkOpenedSource(const std::string& payloadName, const std::string& label, UniqueFd fd, const SourceRules& rules);

// "a regular file", "a FIFO (named pipe)", "a folder", ...: for messages.
std::string fileKind(mode_t mode);

}  // namespace armdock
