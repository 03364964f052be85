// Which of two engine versions is older, in dpkg's order (the order Debian
// and Ubuntu give the packaged engines): "20.10.24+dfsg1" < "24.0.5",
// "1.10.3" < "1.10.10", "1.0~rc1" < "1.0", an epoch "1:" first.
#pragma once

#include <string_view>

namespace armdock {

// Negative when a < b, 0 when equal, positive when a > b.
int compareVersions(std::string_view a, std::string_view b);

// True for a version dpkg would accept: it starts with a digit and holds
// only letters, digits and . + ~ - : (a config's min_version).
bool isVersionText(std::string_view version);

}  // namespace armdock
