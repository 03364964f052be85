#include "version_order.hpp"

#include <cctype>
#include <string>

namespace armdock {

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// dpkg's weight of a character in a non-digit run: '~' before the end,
// the end before letters, letters before everything else.
int order(char c)
{
    if (isDigit(c))
        return 0;
    if (isLetter(c))
        return c;
    if (c == '~')
        return -1;
    if (c)
        return c + 256;
    return 0;
}

// dpkg's verrevcmp: alternating non-digit and digit runs.
int compareParts(std::string_view a, std::string_view b)
{
    std::size_t i = 0, j = 0;
    auto at = [](std::string_view s, std::size_t k) { return k < s.size() ? s[k] : '\0'; };
    while (i < a.size() || j < b.size()) {
        int firstDifference = 0;
        while ((i < a.size() && !isDigit(a[i])) || (j < b.size() && !isDigit(b[j]))) {
            const int ac = order(at(a, i));
            const int bc = order(at(b, j));
            if (ac != bc)
                return ac - bc;
            ++i;
            ++j;
        }
        while (at(a, i) == '0')
            ++i;
        while (at(b, j) == '0')
            ++j;
        while (isDigit(at(a, i)) && isDigit(at(b, j))) {
            if (!firstDifference)
                firstDifference = at(a, i) - at(b, j);
            ++i;
            ++j;
        }
        if (isDigit(at(a, i)))
            return 1;
        if (isDigit(at(b, j)))
            return -1;
        if (firstDifference)
            return firstDifference;
    }
    return 0;
}

struct Split {
    unsigned long epoch = 0;
    std::string_view upstream;
    std::string_view revision;
};

Split split(std::string_view v)
{
    Split s;
    if (const auto colon = v.find(':'); colon != std::string_view::npos && colon > 0) {
        bool digits = colon <= 9;
        for (char c : v.substr(0, colon))
            digits = digits && isDigit(c);
        if (digits) {
            s.epoch = std::stoul(std::string(v.substr(0, colon)));
            v.remove_prefix(colon + 1);
        }
    }
    if (const auto dash = v.rfind('-'); dash != std::string_view::npos) {
        s.revision = v.substr(dash + 1);
        v = v.substr(0, dash);
    }
    s.upstream = v;
    return s;
}

}  // namespace

int compareVersions(std::string_view a, std::string_view b)
{
    const Split x = split(a);
    const Split y = split(b);
    if (x.epoch != y.epoch)
        return x.epoch < y.epoch ? -1 : 1;
    if (const int c = compareParts(x.upstream, y.upstream))
        return c;
    return compareParts(x.revision, y.revision);
}

bool isVersionText(std::string_view version)
{
    if (version.empty() || version.size() > 128 || !isDigit(version.front()))
        return false;
    // A colon only after an epoch: 1 to 9 digits.
    if (const auto colon = version.find(':'); colon != std::string_view::npos) {
        if (colon > 9 || version.find(':', colon + 1) != std::string_view::npos || colon + 1 == version.size() || !isDigit(version[colon + 1]))
            return false;
        for (char c : version.substr(0, colon))
            if (!isDigit(c))
                return false;
    }
    for (char c : version)
        if (!isDigit(c) && !isLetter(c) && c != '.' && c != '+' && c != '~' && c != '-' && c != ':')
            return false;
    return true;
}

}  // namespace armdock
