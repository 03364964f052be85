// libFuzzer target: the agent's config parser (parseConfig, toml++ and the
// ConfigReader behind it) on arbitrary text. Every input must end in a
// Config that keeps the parser's promises or in a ConfigError whose message
// starts with FILE:LINE:COLUMN; anything else (a crash, another exception,
// ASan/UBSan reports, a leak) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/config.hpp"
#include "fuzz_check.hpp"

namespace {

// "agent.toml:12:3: ..." with line and column counted from 1.
bool startsWithPosition(std::string_view message, std::string_view file)
{
    if (!message.starts_with(file))
        return false;
    message.remove_prefix(file.size());
    for (char end : {':', ':'}) {
        std::size_t digits = 0;
        while (digits < message.size() && message[digits] >= '0' && message[digits] <= '9')
            ++digits;
        if (digits == 0 || message[0] == '0' || digits == message.size() || message[digits] != end)
            return false;
        message.remove_prefix(digits + 1);
    }
    return message.starts_with(" ") && message.size() > 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        armdock::Config config = armdock::parseConfig(text, "agent.toml");
        // What the rest of the agent relies on without checking again.
        FUZZ_CHECK(!config.payloads.empty());
        std::size_t engines = 0;
        for (const auto& payload : config.payloads) {
            FUZZ_CHECK(!payload.name.empty());
            FUZZ_CHECK(payload.path.is_absolute());
            FUZZ_CHECK((payload.mode & 022) == 0);
            FUZZ_CHECK(!payload.engine || !payload.versionArgs.empty());
            engines += payload.engine ? 1 : 0;
        }
        FUZZ_CHECK(engines == 1);
        FUZZ_CHECK(config.agent.keepBackups >= 1);
        FUZZ_CHECK(config.agent.stateDir.is_absolute());
        FUZZ_CHECK(config.docker.socket.is_absolute());
        FUZZ_CHECK(config.docker.service.ends_with(".service"));
        FUZZ_CHECK(config.docker.stopTimeoutSec >= 1 && config.docker.healthTimeoutSec >= 1);
    } catch (const armdock::ConfigError& error) {
        FUZZ_CHECK(startsWithPosition(error.what(), "agent.toml:"));
    }
    return 0;
}
