// A second, policy-enforcing dbus-daemon for access tests: a config modelled
// on Debian's system.conf (everyone may connect; nobody may own a name or send
// a method call unless a policy file punches the hole), plus the policy files
// given, copied into its own system.d/ folder and pulled in with <includedir>
// as the system bus does. It runs in a mount namespace of its own where
// /etc/group is a copy of the host's with extra groups added, so that
// `<policy group="NAME">` rules can be tested without touching the host's
// /etc/group. Stopped by PID in the destructor (and by SIGTERM if the test
// process dies: PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace armdock::test {

class PolicyBus {
public:
    struct Options {
        std::filesystem::path dir;  // its folder (created 0711); the socket is dir/socket
        std::vector<std::filesystem::path> policyFiles;  // copied into dir/system.d/
        std::map<std::string, gid_t> extraGroups;  // name -> gid, visible to the bus only
        // KEY=VALUE for the daemon, e.g. ARMDOCK_SANDBOX=DIR so a sandbox's cleanup finds it too.
        std::vector<std::string> environment;
        std::chrono::milliseconds startTimeout{30000};
    };

    explicit PolicyBus(Options options);
    ~PolicyBus();
    PolicyBus(const PolicyBus&) = delete;
    PolicyBus& operator=(const PolicyBus&) = delete;

    std::string address() const;  // unix:path=DIR/socket
    std::filesystem::path configFile() const { return options_.dir / "system.conf"; }
    std::filesystem::path logFile() const { return options_.dir / "dbus.log"; }
    pid_t pid() const { return pid_; }
    void stop();  // idempotent

private:
    Options options_;
    pid_t pid_ = -1;
};

}  // namespace armdock::test
