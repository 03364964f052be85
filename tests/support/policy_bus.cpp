#include "policy_bus.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "sandbox.hpp"

namespace armdock::test {

namespace fs = std::filesystem;

namespace {

constexpr const char* unshareBinary = "/usr/bin/unshare";
constexpr const char* dbusDaemon = "/usr/bin/dbus-daemon";

// Debian 12's /usr/share/dbus-1/system.conf, minus what a test bus must not
// do (fork, change user, write /run, log to syslog, activate services).
std::string systemConf(const fs::path& socket, const fs::path& includeDir)
{
    return "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
           " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
           "<busconfig>\n"
           "  <type>system</type>\n"
           "  <auth>EXTERNAL</auth>\n"
           "  <listen>unix:path=" + socket.string() + "</listen>\n"
           "  <policy context=\"default\">\n"
           "    <allow user=\"*\"/>\n"
           "    <deny own=\"*\"/>\n"
           "    <deny send_type=\"method_call\"/>\n"
           "    <allow send_type=\"signal\"/>\n"
           "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
           "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
           "    <allow receive_type=\"method_call\"/>\n"
           "    <allow receive_type=\"method_return\"/>\n"
           "    <allow receive_type=\"error\"/>\n"
           "    <allow receive_type=\"signal\"/>\n"
           "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"/>\n"
           "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"
           "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Properties\"/>\n"
           "    <deny send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\" "
           "send_member=\"UpdateActivationEnvironment\"/>\n"
           "    <deny send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Debug.Stats\"/>\n"
           "  </policy>\n"
           "  <includedir>" + includeDir.string() + "</includedir>\n"
           "</busconfig>\n";
}

// The host's /etc/group with `extra` added (replacing groups of the same name).
std::string groupFile(const std::map<std::string, gid_t>& extra)
{
    std::istringstream host(readFile("/etc/group"));
    std::string out, line;
    while (std::getline(host, line)) {
        const std::string name = line.substr(0, line.find(':'));
        if (!extra.count(name))
            out += line + "\n";
    }
    for (const auto& [name, gid] : extra)
        out += name + ":x:" + std::to_string(gid) + ":\n";
    return out;
}

bool canConnect(const fs::path& socket)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

PolicyBus::PolicyBus(Options options) : options_(std::move(options))
{
    const fs::path& dir = options_.dir;
    fs::create_directories(dir / "system.d");
    ::chmod(dir.c_str(), 0711);  // other uids reach the socket, nothing else
    for (const auto& file : options_.policyFiles)
        fs::copy_file(file, dir / "system.d" / file.filename(), fs::copy_options::overwrite_existing);
    writeFile(configFile(), systemConf(dir / "socket", dir / "system.d"));
    const fs::path groups = dir / "group";
    writeFile(groups, groupFile(options_.extraGroups));

    std::string script = "exec " + std::string(dbusDaemon) + " --config-file=\"$2\" --nofork --nopidfile";
    if (!options_.extraGroups.empty())
        script = "mount --bind \"$1\" /etc/group && " + script;
    std::vector<std::string> args = {unshareBinary, "-m", "--propagation", "private", "/bin/sh", "-c", script, "sh",
        groups.string(), configFile().string()};
    std::vector<std::string> env = options_.environment;
    env.push_back("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
    pid_ = spawnLogged(logFile(), args, env);

    bool exited = false;
    const bool up = Sandbox::waitFor(
        [&] {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                exited = true;
                return true;
            }
            return canConnect(dir / "socket");
        },
        options_.startTimeout, std::chrono::milliseconds(5));
    if (exited || !up) {
        if (exited)
            pid_ = -1;
        stop();
        std::string log;
        try {
            log = readFile(logFile());
        } catch (const std::exception&) {
        }
        throw std::runtime_error("policy bus (" + configFile().string() + ") " + (exited ? "exited" : "did not listen") +
                                 " during start:\n" + log);
    }
}

PolicyBus::~PolicyBus() { stop(); }

std::string PolicyBus::address() const { return "unix:path=" + (options_.dir / "socket").string(); }

void PolicyBus::stop()
{
    if (pid_ <= 0)
        return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    if (!Sandbox::waitFor([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, std::chrono::seconds(5))) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
}

}  // namespace armdock::test
