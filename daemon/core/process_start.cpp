#include "process_start.hpp"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace armdock {

std::optional<unsigned long long> processStartTime(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name (field 2) is in parentheses and may hold spaces or ')':
    // the fields are counted from its last ')'.
    std::size_t at = stat.rfind(')');
    if (at == std::string::npos)
        return std::nullopt;
    int field = 2;
    while (field < 22) {
        at = stat.find(' ', at + 1);
        if (at == std::string::npos)
            return std::nullopt;
        ++field;
    }
    char* end = nullptr;
    const unsigned long long ticks = std::strtoull(stat.c_str() + at + 1, &end, 10);
    if (end == stat.c_str() + at + 1)
        return std::nullopt;
    return ticks;
}

}  // namespace armdock
