// Decides from the first bytes of a file (and its size) whether it is an ELF
// executable for this machine. Pure: no I/O, so it is unit-tested and fuzzed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace armdock {

// EM_AARCH64 on arm64, EM_X86_64 on x86-64 (the machine the agent was built for).
std::uint16_t hostElfMachine();
std::string elfMachineName(std::uint16_t machine);  // "aarch64", "x86-64", "machine 40"

struct ElfVerdict {
    bool ok = false;
    std::string problem;  // empty when ok: "not an ELF file (it starts with '#!')", "truncated ELF: ...", "ELF for arm, this machine runs aarch64", ...
};

// `head` holds the first bytes of the file (at least 64 when the file is that
// long); `fileSize` is its full size. Checks magic, 64-bit class, little
// endian, type EXEC or DYN, e_machine == expectedMachine, and that the
// program and section header tables end inside the file.
ElfVerdict checkElfExecutable(std::span<const std::byte> head, std::uint64_t fileSize, std::uint16_t expectedMachine);

}  // namespace armdock
