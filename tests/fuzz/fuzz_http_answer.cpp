// libFuzzer target: the engine's raw HTTP/1.1 answer (status line, headers,
// Content-Length or chunked body, or a body up to the end of the connection)
// through parseHttpAnswer, the same Beast parser set-up the socket read uses,
// then the body through the parser of the answer it would be.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "docker/engine_answers.hpp"
#include "docker/http_answer.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view raw(reinterpret_cast<const char*>(data), size);
    armdock::HttpAnswer answer;
    try {
        answer = armdock::parseHttpAnswer(raw);
    } catch (const std::invalid_argument&) {
        return 0;
    }
    FUZZ_CHECK(answer.status <= 999);  // Beast takes any three digits ("020" is 20)
    FUZZ_CHECK(answer.body.size() <= raw.size());
    if (answer.status != 200) {
        armdock::describeErrorAnswer(answer.status, answer.body);
        return 0;
    }
    try {
        if (!answer.body.empty() && answer.body.front() == '[')
            armdock::parseContainerList(answer.body);
        else
            armdock::parseVersionBody(answer.body);
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
