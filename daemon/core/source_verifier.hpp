// Step 1 of a transaction (verifying): opens a source file once, safely, and
// refuses anything that is not a root-owned, not group/world-writable,
// non-empty regular ELF executable for this machine. The caller works only on
// the returned descriptor afterwards (no TOCTOU). A descriptor the client
// opened (UpgradeFds) gets the same checks.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "elf_check.hpp"
#include "unique_fd.hpp"

namespace armdock {

struct SourceRules {
    uid_t requiredOwner = 0;
    std::uint16_t elfMachine = hostElfMachine();
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
// executable for rules.elfMachine.
OpenedSource openAndCheckSource(const std::string& payloadName, const std::string& path, const SourceRules& rules);

// The same checks on a descriptor the client opened and passed over D-Bus
// (UpgradeFds): `label` stands for the path in every message ("fd:docker", or
// the path the client named). Takes the descriptor (the agent's own dup of it)
// and marks it close-on-exec. Also PayloadRejected for a descriptor that was
// not opened read-only (O_WRONLY, O_RDWR, O_PATH).
OpenedSource checkOpenedSource(const std::string& payloadName, const std::string& label, UniqueFd fd, const SourceRules& rules);

}  // namespace armdock
