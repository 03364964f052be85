#include "elf_check.hpp"

#include <elf.h>

#include <algorithm>
#include <optional>

namespace armdock {

namespace {

// Offsets in the ELF64 header (System V ABI); read by hand so that the check
// never depends on the host's struct layout or byte order.
constexpr std::size_t elf64HeaderSize = 64;
constexpr std::size_t offType = 16;
constexpr std::size_t offMachine = 18;
constexpr std::size_t offPhoff = 32;
constexpr std::size_t offShoff = 40;
constexpr std::size_t offPhentsize = 54;
constexpr std::size_t offPhnum = 56;
constexpr std::size_t offShentsize = 58;
constexpr std::size_t offShnum = 60;

std::uint64_t readLittle(std::span<const std::byte> head, std::size_t offset, std::size_t width)
{
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < width; ++i)
        value |= static_cast<std::uint64_t>(head[offset + i]) << (8 * i);
    return value;
}

std::uint16_t readHalf(std::span<const std::byte> head, std::size_t offset, bool bigEndian)
{
    auto b0 = static_cast<std::uint16_t>(head[offset]);
    auto b1 = static_cast<std::uint16_t>(head[offset + 1]);
    return bigEndian ? static_cast<std::uint16_t>((b0 << 8) | b1) : static_cast<std::uint16_t>((b1 << 8) | b0);
}

ElfVerdict reject(std::string problem)
{
    return ElfVerdict{false, std::move(problem)};
}

ElfVerdict truncatedHeader(std::span<const std::byte> head, std::uint64_t fileSize)
{
    std::uint64_t have = std::min<std::uint64_t>(head.size(), fileSize);
    return reject("truncated ELF: the file is " + std::to_string(have) + " bytes, shorter than the 64-byte ELF header");
}

bool startsWith(std::span<const std::byte> head, std::string_view prefix)
{
    if (head.size() < prefix.size())
        return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (head[i] != static_cast<std::byte>(prefix[i]))
            return false;
    return true;
}

// Empty when the magic is right (or a prefix of it in a tiny file).
std::optional<ElfVerdict> checkMagic(std::span<const std::byte> head, std::uint64_t fileSize)
{
    static constexpr std::string_view magic = "\x7f" "ELF";
    if (fileSize == 0 || head.empty())
        return reject("not an ELF file (the file is empty)");
    std::size_t compared = std::min(head.size(), magic.size());
    if (!startsWith(head, magic.substr(0, compared))) {
        if (startsWith(head, "#!"))
            return reject("not an ELF file (it starts with '#!')");
        return reject("not an ELF file (no ELF magic at its start)");
    }
    if (compared < magic.size())
        return truncatedHeader(head, fileSize);
    return std::nullopt;
}

std::string machineWithClass(std::span<const std::byte> head, bool is64, bool bigEndian)
{
    std::string what = is64 ? "64-bit" : "32-bit";
    what += bigEndian ? " big-endian" : " little-endian";
    if (head.size() >= offMachine + 2)
        return "ELF for " + elfMachineName(readHalf(head, offMachine, bigEndian)) + " (" + what + ")";
    return what + " ELF";
}

// A 32-bit or big-endian file cannot run here: say what it is for.
std::optional<ElfVerdict> checkClassAndOrder(std::span<const std::byte> head, std::uint64_t fileSize,
                                             std::uint16_t expectedMachine)
{
    if (head.size() < EI_DATA + 1)
        return truncatedHeader(head, fileSize);
    auto elfClass = static_cast<unsigned>(head[EI_CLASS]);
    auto order = static_cast<unsigned>(head[EI_DATA]);
    if (elfClass != ELFCLASS32 && elfClass != ELFCLASS64)
        return reject("invalid ELF: unknown class " + std::to_string(elfClass) + " in its header");
    if (order != ELFDATA2LSB && order != ELFDATA2MSB)
        return reject("invalid ELF: unknown byte order " + std::to_string(order) + " in its header");
    bool is64 = elfClass == ELFCLASS64;
    bool bigEndian = order == ELFDATA2MSB;
    if (is64 && !bigEndian)
        return std::nullopt;
    return reject(machineWithClass(head, is64, bigEndian) + ", this machine runs " + elfMachineName(expectedMachine)
                  + " (64-bit little-endian)");
}

std::optional<ElfVerdict> checkType(std::uint16_t type)
{
    switch (type) {
    case ET_EXEC:
    case ET_DYN:
        return std::nullopt;
    case ET_REL:
        return reject("ELF relocatable object (ET_REL), not an executable");
    case ET_CORE:
        return reject("ELF core dump (ET_CORE), not an executable");
    default:
        return reject("ELF of type " + std::to_string(type) + ", not an executable");
    }
}

// Where a table of `count` entries of `entrySize` bytes at `offset` ends;
// nullopt on overflow (which is as bad as "beyond the file").
std::optional<std::uint64_t> tableEnd(std::uint64_t offset, std::uint64_t entrySize, std::uint64_t count)
{
    if (entrySize != 0 && count > (UINT64_MAX - offset) / entrySize)
        return std::nullopt;
    return offset + entrySize * count;
}

std::optional<ElfVerdict> checkTable(const char* what, std::uint64_t offset, std::uint64_t entrySize,
                                     std::uint64_t count, std::uint64_t fileSize)
{
    auto end = tableEnd(offset, entrySize, count);
    if (!end)
        return reject(std::string("invalid ELF: the ") + what + " table's size overflows");
    if (*end > fileSize)
        return reject(std::string("truncated ELF: the ") + what + " table ends at byte " + std::to_string(*end)
                      + ", the file has only " + std::to_string(fileSize) + " bytes");
    return std::nullopt;
}

std::optional<ElfVerdict> checkTables(std::span<const std::byte> head, std::uint64_t fileSize)
{
    std::uint64_t phoff = readLittle(head, offPhoff, 8);
    std::uint64_t phentsize = readLittle(head, offPhentsize, 2);
    std::uint64_t phnum = readLittle(head, offPhnum, 2);
    std::uint64_t shoff = readLittle(head, offShoff, 8);
    std::uint64_t shentsize = readLittle(head, offShentsize, 2);
    std::uint64_t shnum = readLittle(head, offShnum, 2);
    if (phnum == 0 || phoff == 0)
        return reject("ELF without program headers, not an executable");
    if (auto bad = checkTable("program header", phoff, phentsize, phnum, fileSize))
        return bad;
    if (shoff == 0)
        return std::nullopt;  // stripped of section headers: still runs
    // shnum == 0 with a table means extended numbering: entry 0 must exist.
    return checkTable("section header", shoff, shentsize, shnum == 0 ? 1 : shnum, fileSize);
}

}  // namespace

std::uint16_t hostElfMachine()
{
#if defined(__aarch64__)
    return EM_AARCH64;
#elif defined(__x86_64__)
    return EM_X86_64;
#else
#error "armdock-agent knows the ELF machine of aarch64 and x86-64 only"
#endif
}

std::string elfMachineName(std::uint16_t machine)
{
    switch (machine) {
    case EM_AARCH64: return "aarch64";
    case EM_X86_64: return "x86-64";
    case EM_386: return "x86";
    case EM_ARM: return "arm";
    case EM_PPC: return "powerpc";
    case EM_PPC64: return "powerpc64";
    case EM_S390: return "s390";
    case EM_MIPS: return "mips";
    case EM_RISCV: return "riscv";
    case EM_SPARC: return "sparc";
    case EM_SPARCV9: return "sparc64";
    case EM_IA_64: return "ia64";
    default: return "machine " + std::to_string(machine);
    }
}

ElfVerdict checkElfExecutable(std::span<const std::byte> head, std::uint64_t fileSize, std::uint16_t expectedMachine)
{
    if (auto bad = checkMagic(head, fileSize))
        return *bad;
    if (auto bad = checkClassAndOrder(head, fileSize, expectedMachine))
        return *bad;
    if (head.size() < elf64HeaderSize || fileSize < elf64HeaderSize)
        return truncatedHeader(head, fileSize);
    if (auto bad = checkType(readHalf(head, offType, false)))
        return *bad;
    std::uint16_t machine = readHalf(head, offMachine, false);
    if (machine != expectedMachine)
        return reject("ELF for " + elfMachineName(machine) + ", this machine runs " + elfMachineName(expectedMachine));
    if (auto bad = checkTables(head, fileSize))
        return *bad;
    return ElfVerdict{true, {}};
}

}  // namespace armdock
