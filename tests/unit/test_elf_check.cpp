#include <gtest/gtest.h>

#include <elf.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/elf_check.hpp"

namespace armdock {
namespace {

// An ELF header written byte by byte, as the kernel reads it.
struct ElfHeader {
    unsigned char elfClass = ELFCLASS64;
    unsigned char data = ELFDATA2LSB;
    std::uint16_t type = ET_DYN;
    std::uint16_t machine = EM_AARCH64;
    std::uint64_t phoff = 64;
    std::uint16_t phentsize = 56;
    std::uint16_t phnum = 4;
    std::uint64_t shoff = 0;
    std::uint16_t shentsize = 64;
    std::uint16_t shnum = 0;

    std::vector<std::byte> bytes() const
    {
        std::vector<std::byte> out(64);
        const unsigned char ident[] = {0x7f, 'E', 'L', 'F', elfClass, data, EV_CURRENT};
        std::memcpy(out.data(), ident, sizeof ident);
        bool big = data == ELFDATA2MSB;
        put(out, 16, type, 2, big);
        put(out, 18, machine, 2, big);
        put(out, 32, phoff, 8, big);
        put(out, 40, shoff, 8, big);
        put(out, 52, 64, 2, big);
        put(out, 54, phentsize, 2, big);
        put(out, 56, phnum, 2, big);
        put(out, 58, shentsize, 2, big);
        put(out, 60, shnum, 2, big);
        return out;
    }

    static void put(std::vector<std::byte>& out, std::size_t offset, std::uint64_t value, std::size_t width, bool big)
    {
        for (std::size_t i = 0; i < width; ++i) {
            std::size_t at = big ? offset + width - 1 - i : offset + i;
            out[at] = static_cast<std::byte>((value >> (8 * i)) & 0xff);
        }
    }
};

std::vector<std::byte> bytesOf(const std::string& text)
{
    std::vector<std::byte> out(text.size());
    std::memcpy(out.data(), text.data(), text.size());
    return out;
}

ElfVerdict check(const std::vector<std::byte>& head, std::uint64_t size, std::uint16_t machine = EM_AARCH64)
{
    return checkElfExecutable(head, size, machine);
}

TEST(ElfCheck, HostMachine)
{
#if defined(__aarch64__)
    EXPECT_EQ(hostElfMachine(), EM_AARCH64);
#else
    EXPECT_EQ(hostElfMachine(), EM_X86_64);
#endif
    EXPECT_EQ(elfMachineName(EM_AARCH64), "aarch64");
    EXPECT_EQ(elfMachineName(EM_X86_64), "x86-64");
    EXPECT_EQ(elfMachineName(EM_ARM), "arm");
    EXPECT_EQ(elfMachineName(9999), "machine 9999");
}

TEST(ElfCheck, AcceptsExecutableAndPie)
{
    ElfHeader header;
    auto verdict = check(header.bytes(), 4096);
    EXPECT_TRUE(verdict.ok) << verdict.problem;
    EXPECT_EQ(verdict.problem, "");
    header.type = ET_EXEC;
    header.shoff = 4096 - 64 * 3;
    header.shnum = 3;
    verdict = check(header.bytes(), 4096);
    EXPECT_TRUE(verdict.ok) << verdict.problem;
}

TEST(ElfCheck, AcceptsTheHostsOwnTrue)
{
    std::ifstream in("/bin/true", std::ios::binary);
    std::vector<char> head(64);
    in.read(head.data(), 64);
    std::vector<std::byte> bytes(64);
    std::memcpy(bytes.data(), head.data(), 64);
    auto verdict = checkElfExecutable(bytes, std::filesystem::file_size("/bin/true"), hostElfMachine());
    EXPECT_TRUE(verdict.ok) << verdict.problem;
}

TEST(ElfCheck, ScriptsAndOtherFiles)
{
    EXPECT_EQ(check(bytesOf("#!/bin/sh\nexec dockerd\n"), 23).problem, "not an ELF file (it starts with '#!')");
    EXPECT_EQ(check(bytesOf("MZ\x90\x00 this is not ELF at all, but long enough to be a header......"), 68).problem,
              "not an ELF file (no ELF magic at its start)");
    EXPECT_EQ(check({}, 0).problem, "not an ELF file (the file is empty)");
    EXPECT_FALSE(check({}, 0).ok);
}

TEST(ElfCheck, Truncated)
{
    auto full = ElfHeader().bytes();
    std::vector<std::byte> three(full.begin(), full.begin() + 3);
    EXPECT_EQ(check(three, 3).problem, "truncated ELF: the file is 3 bytes, shorter than the 64-byte ELF header");
    std::vector<std::byte> forty(full.begin(), full.begin() + 40);
    EXPECT_EQ(check(forty, 40).problem, "truncated ELF: the file is 40 bytes, shorter than the 64-byte ELF header");

    ElfHeader header;  // 4 program headers of 56 bytes at 64: they end at 288
    EXPECT_EQ(check(header.bytes(), 200).problem,
              "truncated ELF: the program header table ends at byte 288, the file has only 200 bytes");
    header.shoff = 1000;
    header.shnum = 10;
    EXPECT_EQ(check(header.bytes(), 1200).problem,
              "truncated ELF: the section header table ends at byte 1640, the file has only 1200 bytes");
    header.shoff = 0xffffffffffffff00ull;
    header.shentsize = 0xffff;
    EXPECT_EQ(check(header.bytes(), 1200).problem, "invalid ELF: the section header table's size overflows");
}

TEST(ElfCheck, OtherMachine)
{
    ElfHeader header;
    header.machine = EM_X86_64;
    EXPECT_EQ(check(header.bytes(), 4096, EM_AARCH64).problem, "ELF for x86-64, this machine runs aarch64");
    header.machine = EM_AARCH64;
    EXPECT_EQ(check(header.bytes(), 4096, EM_X86_64).problem, "ELF for aarch64, this machine runs x86-64");
    header.machine = EM_RISCV;
    EXPECT_EQ(check(header.bytes(), 4096, EM_AARCH64).problem, "ELF for riscv, this machine runs aarch64");
}

TEST(ElfCheck, ThirtyTwoBitAndBigEndian)
{
    ElfHeader arm32;
    arm32.elfClass = ELFCLASS32;
    arm32.machine = EM_ARM;
    EXPECT_EQ(check(arm32.bytes(), 4096).problem,
              "ELF for arm (32-bit little-endian), this machine runs aarch64 (64-bit little-endian)");
    ElfHeader bigEndian;
    bigEndian.data = ELFDATA2MSB;
    bigEndian.machine = EM_AARCH64;
    EXPECT_EQ(check(bigEndian.bytes(), 4096).problem,
              "ELF for aarch64 (64-bit big-endian), this machine runs aarch64 (64-bit little-endian)");
    ElfHeader s390;
    s390.data = ELFDATA2MSB;
    s390.machine = EM_S390;
    EXPECT_EQ(check(s390.bytes(), 4096, EM_X86_64).problem,
              "ELF for s390 (64-bit big-endian), this machine runs x86-64 (64-bit little-endian)");
    ElfHeader badClass;
    badClass.elfClass = 7;
    EXPECT_EQ(check(badClass.bytes(), 4096).problem, "invalid ELF: unknown class 7 in its header");
}

TEST(ElfCheck, NotAnExecutableType)
{
    ElfHeader header;
    header.type = ET_REL;
    EXPECT_EQ(check(header.bytes(), 4096).problem, "ELF relocatable object (ET_REL), not an executable");
    header.type = ET_CORE;
    EXPECT_EQ(check(header.bytes(), 4096).problem, "ELF core dump (ET_CORE), not an executable");
    header.type = ET_DYN;
    header.phnum = 0;
    EXPECT_EQ(check(header.bytes(), 4096).problem, "ELF without program headers, not an executable");
}

}  // namespace
}  // namespace armdock
