// libFuzzer target: checkElfExecutable on the first bytes of a file. The
// input is the file's head; it is checked as a whole file, as the head of a
// much larger file, and as a head longer than the file's stat size (the file
// shrank between read and stat), for this machine and for another one.
#include <cstddef>
#include <cstdint>
#include <elf.h>
#include <span>

#include "core/elf_check.hpp"
#include "fuzz_check.hpp"

namespace {

void check(std::span<const std::byte> head, std::uint64_t fileSize, std::uint16_t machine)
{
    auto verdict = armdock::checkElfExecutable(head, fileSize, machine);
    FUZZ_CHECK(verdict.ok == verdict.problem.empty());
    if (verdict.ok) {
        FUZZ_CHECK(head.size() >= 64 && fileSize >= 64);
        FUZZ_CHECK(head[0] == std::byte{0x7f} && head[1] == std::byte{'E'});
        FUZZ_CHECK(static_cast<std::uint16_t>(static_cast<unsigned>(head[18]) |
                                              (static_cast<unsigned>(head[19]) << 8)) == machine);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::span<const std::byte> head(reinterpret_cast<const std::byte*>(data), size);
    for (std::uint16_t machine : {armdock::hostElfMachine(), std::uint16_t{EM_AARCH64}, std::uint16_t{EM_ARM}}) {
        check(head, size, machine);
        check(head, std::uint64_t{1} << 40, machine);
        check(head, size / 2, machine);
    }
    return 0;
}
