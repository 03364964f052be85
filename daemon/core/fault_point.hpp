// Named fault points at each durable step of a transaction. Compiled in only
// with -Dfault_injection=true (tests): when the environment variable
// ARMDOCK_FAULT equals the point's name, the agent kills itself with SIGKILL
// there, so a test can prove the recovery from a crash at that very step.
// faultPoints is the whole list: a call with a name not in it does not
// compile, and the crash test iterates it.
#pragma once

#include <array>
#include <string_view>

#include "armdock_build_config.h"

namespace armdock {

inline constexpr std::array<std::string_view, 18> faultPoints = {
    // An upgrade, in its order ("after-divert": dpkg_owned = "divert" only).
    "after-begin", "after-stage", "after-backup", "after-divert", "before-stop", "after-stop", "after-first-rename", "after-rename",
    "after-swap", "after-start", "after-check", "after-commit",
    // A rollback (also a recovery's), and the restore inside it.
    "rollback-begin", "rollback-after-stop", "restore-after-copy", "restore-after-rename", "rollback-after-restore",
    "rollback-after-start",
};

// A name checked against faultPoints while compiling.
class FaultPointName {
public:
    consteval FaultPointName(const char* name) : name_(name)  // NOLINT: implicit, so faultPoint("after-stop") reads plainly
    {
        bool known = false;
        for (std::string_view point : faultPoints)
            known = known || point == name;
        if (!known)
            throw "fault point not in faultPoints (core/fault_point.hpp)";
    }
    const char* name() const { return name_; }

private:
    const char* name_;
};

#if ARMDOCK_FAULT_INJECTION
void faultPoint(FaultPointName point);
#else
inline void faultPoint(FaultPointName) {}  // compiled to nothing in a shipped build
#endif

}  // namespace armdock
