// libFuzzer target: every parser of the engine's JSON answers (engine_answers)
// on the same bytes, as if any endpoint had answered them. Each must return
// or throw std::invalid_argument; describeErrorAnswer must never throw.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "docker/engine_answers.hpp"
#include "fuzz_check.hpp"

namespace {

template <typename Parse>
void tryParse(Parse parse, std::string_view body)
{
    try {
        parse(body);
    } catch (const std::invalid_argument&) {
        // refused with a reason: fine
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view body(reinterpret_cast<const char*>(data), size);
    tryParse([](std::string_view b) { FUZZ_CHECK(!armdock::parseVersionBody(b).empty()); }, body);
    tryParse([](std::string_view b) {
        for (const auto& component : armdock::parseComponentsBody(b))
            FUZZ_CHECK(component.name != "Engine");
    }, body);
    tryParse([](std::string_view b) {
        auto sha = armdock::parseInitSha1Body(b);
        FUZZ_CHECK(!sha || !sha->empty());
    }, body);
    tryParse([](std::string_view b) {
        for (const auto& container : armdock::parseContainerList(b)) {
            FUZZ_CHECK(!container.id.empty());
            armdock::isSafeContainerId(container.id);
        }
    }, body);
    tryParse([](std::string_view b) { armdock::parseRestartPolicy(b); }, body);
    tryParse([](std::string_view b) { armdock::parseInspectState(b); }, body);
    auto described = armdock::describeErrorAnswer(404, body);
    FUZZ_CHECK(described.starts_with("HTTP 404"));
    return 0;
}
