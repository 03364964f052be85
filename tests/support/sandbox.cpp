#include "sandbox.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace armdock::test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* systemdBinary = "/lib/systemd/systemd";
constexpr const char* unshareBinary = "/usr/bin/unshare";
constexpr const char* realDockerd = "/usr/sbin/dockerd";
constexpr const char* smallElf = "/bin/true";
constexpr const char* cgroupFs = "/sys/fs/cgroup";

double secondsSince(Clock::time_point start)
{
    return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string joinArgs(const std::vector<std::string>& argv)
{
    std::string out;
    for (const auto& a : argv) {
        if (!out.empty())
            out += ' ';
        out += a;
    }
    return out;
}

std::string tail(const std::string& text, size_t maxChars = 4000)
{
    return text.size() <= maxChars ? text : "..." + text.substr(text.size() - maxChars);
}

void replaceAll(std::string& text, const std::string& from, const std::string& to)
{
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
}

std::string readFileOr(const fs::path& file, const std::string& fallback = {})
{
    std::ifstream in(file, std::ios::binary);
    if (!in)
        return fallback;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The fields of /proc/PID/stat after "(comm) ", from field 3 (state) on; "" if gone.
std::string statAfterName(pid_t pid)
{
    const std::string stat = readFileOr("/proc/" + std::to_string(pid) + "/stat");
    const auto close = stat.rfind(')');
    return close == std::string::npos || close + 2 >= stat.size() ? std::string() : stat.substr(close + 2);
}

// Field 22 of /proc/PID/stat (start time in clock ticks since boot), 0 if gone.
unsigned long long processStartTime(pid_t pid)
{
    std::istringstream rest(statAfterName(pid));
    std::string field;
    // After "comm)": state is field 3; start time is field 22.
    for (int i = 3; i <= 22; ++i) {
        if (!(rest >> field))
            return 0;
    }
    return std::strtoull(field.c_str(), nullptr, 10);
}

char processState(pid_t pid)
{
    const std::string fields = statAfterName(pid);
    return fields.empty() ? 0 : fields[0];
}

pid_t parentOf(pid_t pid)
{
    std::istringstream rest(statAfterName(pid));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    return ppid;
}

std::vector<pid_t> allPids()
{
    std::vector<pid_t> pids;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const auto name = entry.path().filename().string();
        if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit))
            pids.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return pids;
}

// Mount points under dir in this mount namespace, deepest first.
std::vector<std::string> mountsUnder(const fs::path& dir)
{
    std::vector<std::string> out;
    std::istringstream lines(readFileOr("/proc/self/mountinfo"));
    std::string line;
    const std::string prefix = dir.string() + "/";
    while (std::getline(lines, line)) {
        std::istringstream f(line);
        std::string id, parent, devno, root, mountPoint;
        f >> id >> parent >> devno >> root >> mountPoint;
        std::string decoded;  // \040 and friends
        for (size_t i = 0; i < mountPoint.size(); ++i) {
            if (mountPoint[i] == '\\' && i + 3 < mountPoint.size()) {
                decoded += static_cast<char>(std::stoi(mountPoint.substr(i + 1, 3), nullptr, 8));
                i += 3;
            } else {
                decoded += mountPoint[i];
            }
        }
        if (decoded == dir.string() || decoded.starts_with(prefix))
            out.push_back(decoded);
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    return out;
}

// Removes a cgroup folder and its children (deepest first); ignores what is gone.
void removeCgroupTree(const fs::path& dir)
{
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.is_directory(ec))
            removeCgroupTree(entry.path());
    }
    ::rmdir(dir.c_str());
}

void collectCgroupProcs(const fs::path& dir, std::set<pid_t>& out)
{
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return;
    std::istringstream procs(readFileOr(dir / "cgroup.procs"));
    pid_t pid;
    while (procs >> pid)
        out.insert(pid);
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.is_directory(ec))
            collectCgroupProcs(entry.path(), out);
    }
}

// Folders named `name` in every mounted cgroup hierarchy (v1 controllers,
// name=systemd, the unified one, or a pure cgroup2 /sys/fs/cgroup).
std::vector<fs::path> cgroupFolders(const std::string& name)
{
    std::vector<fs::path> out;
    if (name.empty())
        return out;
    std::error_code ec;
    if (fs::exists(fs::path(cgroupFs) / name, ec))
        out.push_back(fs::path(cgroupFs) / name);
    for (const auto& entry : fs::directory_iterator(cgroupFs, ec)) {
        std::error_code ec2;
        if (entry.is_directory(ec2) && !entry.is_symlink(ec2) && fs::exists(entry.path() / name, ec2))
            out.push_back(entry.path() / name);
    }
    return out;
}

// Minimal HTTP/1.0 GET over a unix socket.
std::optional<HttpReply> unixHttpGet(const fs::path& socketPath, const std::string& path,
    std::chrono::milliseconds timeout)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return std::nullopt;
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    timeval tv{};
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const auto s = socketPath.string();
    if (s.size() >= sizeof addr.sun_path)
        return std::nullopt;
    std::memcpy(addr.sun_path, s.c_str(), s.size() + 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return std::nullopt;
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: docker\r\nUser-Agent: armdock-sandbox\r\n\r\n";
    size_t sent = 0;
    while (sent < request.size()) {
        ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0)
            return std::nullopt;
        sent += static_cast<size_t>(n);
    }
    std::string response;
    char buffer[8192];
    for (;;) {
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return std::nullopt;  // timeout or reset
        }
        response.append(buffer, static_cast<size_t>(n));
    }
    // "HTTP/1.1 200 OK\r\n...\r\n\r\nBODY"
    if (!response.starts_with("HTTP/1."))
        return std::nullopt;
    HttpReply reply;
    reply.status = std::atoi(response.c_str() + 9);
    auto bodyAt = response.find("\r\n\r\n");
    if (bodyAt != std::string::npos)
        reply.body = response.substr(bodyAt + 4);
    return reply;
}

}  // namespace

std::string systemdUnitPath(const std::string& unit)
{
    std::string path = "/org/freedesktop/systemd1/unit/";
    for (unsigned char c : unit) {
        if (std::isalnum(c)) {
            path += static_cast<char>(c);
        } else {
            char escaped[4];
            std::snprintf(escaped, sizeof escaped, "_%02x", c);
            path += escaped;
        }
    }
    return path;
}

std::vector<char*> cStrings(std::vector<std::string>& strings)
{
    std::vector<char*> out;
    for (auto& s : strings)
        out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

pid_t spawnLogged(const std::filesystem::path& log, std::vector<std::string> args, std::vector<std::string> env,
                  const SpawnSetup& setup)
{
    auto argv = cStrings(args);
    auto envp = cStrings(env);
    int logFd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logFd < 0)
        throw std::runtime_error("open " + log.string() + ": " + std::strerror(errno));
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(logFd);
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        // Child: async-signal-safe calls only.
        if (setup.ownProcessGroup)
            ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, setup.deathSignal);
        if (::getppid() != parent)
            ::_exit(125);
        if (!setup.cgroupProcsFiles.empty()) {
            char pidText[16];
            int n = 0;
            char rev[16];
            for (pid_t v = ::getpid(); v > 0; v /= 10)
                rev[n++] = static_cast<char>('0' + v % 10);
            for (int i = 0; i < n; ++i)
                pidText[i] = rev[n - 1 - i];
            for (const auto& file : setup.cgroupProcsFiles) {
                int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
                if (fd >= 0) {
                    (void)!::write(fd, pidText, static_cast<size_t>(n));
                    ::close(fd);
                }
            }
        }
        int devNull = ::open("/dev/null", O_RDONLY);
        ::dup2(devNull, 0);
        ::dup2(logFd, 1);
        ::dup2(logFd, 2);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    ::close(logFd);
    return pid;
}

// ---- free helpers -----------------------------------------------------------

std::filesystem::path enginesDir()
{
    const char* v = std::getenv("ARMDOCK_ENGINES_DIR");
    return v ? fs::path(v) : fs::path();
}

std::filesystem::path agentBinary()
{
    const char* v = std::getenv("ARMDOCK_AGENT_BINARY");
    return v ? fs::path(v) : fs::path();
}

std::filesystem::path armdockctlBinary()
{
    const char* v = std::getenv("ARMDOCKCTL_BINARY");
    return v ? fs::path(v) : fs::path();
}

std::filesystem::path ansibleDir()
{
    const char* v = std::getenv("ARMDOCK_ANSIBLE_DIR");
    return v ? fs::path(v) : fs::path();
}

std::filesystem::path shippedAgentUnit()
{
    const char* v = std::getenv("ARMDOCK_AGENT_UNIT");
    return v ? fs::path(v) : fs::path();
}

std::string serviceSandboxingLines(const std::filesystem::path& unitFile)
{
    std::istringstream in(readFile(unitFile));
    std::string section, out;
    bool taking = false;
    for (std::string line; std::getline(in, line);) {
        const auto first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#' || line[first] == ';')
            continue;
        if (line[first] == '[') {
            section = line.substr(first, line.find(']', first) + 1 - first);
            continue;
        }
        if (section != "[Service]")
            continue;
        taking = taking || line.compare(first, 16, "NoNewPrivileges=") == 0;
        if (taking)
            out += line + "\n";
    }
    if (out.empty())
        throw std::runtime_error(unitFile.string() + " has no NoNewPrivileges= line in [Service]: no sandboxing to copy");
    return out;
}

std::string readFile(const std::filesystem::path& file)
{
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw std::runtime_error("cannot read " + file.string() + ": " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void writeFile(const std::filesystem::path& file, const std::string& text, mode_t mode)
{
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        throw std::runtime_error("cannot write " + file.string() + ": " + std::strerror(errno));
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            ::close(fd);
            throw std::runtime_error("cannot write " + file.string() + ": " + std::strerror(e));
        }
        done += static_cast<size_t>(n);
    }
    ::fchmod(fd, mode);
    ::close(fd);
}

void installExecutable(const std::filesystem::path& from, const std::filesystem::path& to)
{
    // Copy beside the target and rename over it: works on a running engine ("Text file busy").
    fs::path tmp = to.parent_path() / ("." + to.filename().string() + ".sandbox-tmp");
    fs::create_directories(to.parent_path());
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
    if (::geteuid() == 0 && ::chown(tmp.c_str(), 0, 0) != 0)
        throw std::runtime_error("chown " + tmp.string() + ": " + std::strerror(errno));
    if (::chmod(tmp.c_str(), 0755) != 0)
        throw std::runtime_error("chmod " + tmp.string() + ": " + std::strerror(errno));
    fs::rename(tmp, to);
}

bool processAlive(pid_t pid)
{
    if (pid <= 0)
        return false;
    if (::kill(pid, 0) != 0 && errno != EPERM)
        return false;
    char state = processState(pid);
    return state != 0 && state != 'Z' && state != 'X';
}

// ---- Sandbox ----------------------------------------------------------------

Sandbox::Sandbox(SandboxOptions options) : options_(std::move(options))
{
    try {
        makeTree();
        writeBaseUnits();
        for (const auto& [name, text] : options_.extraUnits)
            writeUnit(name, text);
        makeCgroups();
        auto start = Clock::now();
        spawnManager();
        waitForManager();
        managerStartSeconds_ = secondsSince(start);
        if (options_.startDocker)
            startDocker();
        if (!options_.startUnits.empty())
            startUnits(options_.startUnits);
    } catch (...) {
        shutdown();
        throw;
    }
}

Sandbox::~Sandbox()
{
    try {
        shutdown();
    } catch (const std::exception& e) {
        std::cerr << "armdock sandbox: cleanup of " << dir_ << " failed: " << e.what() << "\n";
    } catch (...) {
    }
}

std::string Sandbox::busAddress() const
{
    return "unix:path=" + (runtimeDir() / "bus").string();
}

std::filesystem::path Sandbox::payloadPath(const std::string& name) const
{
    if (name == "docker" || name == "dockerd")
        return root() / options_.enginePath;
    if (name == "dockerinit")
        return root() / "usr/lib/docker/dockerinit";
    if (name == "containerd")
        return root() / "usr/bin/containerd";
    if (name == "runc")
        return root() / "usr/sbin/runc";
    throw std::invalid_argument("unknown payload " + name);
}

std::vector<std::string> Sandbox::environment() const
{
    const char* home = std::getenv("HOME");
    return {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        std::string("HOME=") + (home ? home : "/root"),
        "LANG=C.UTF-8",
        "XDG_RUNTIME_DIR=" + runtimeDir().string(),
        "XDG_CONFIG_HOME=" + configHome().string(),
        "XDG_DATA_HOME=" + (dir_ / "data-home").string(),
        "XDG_STATE_HOME=" + (dir_ / "state-home").string(),
        "DBUS_SESSION_BUS_ADDRESS=" + busAddress(),
        "SYSTEMD_PAGER=",
        "SYSTEMD_COLORS=0",
        "ARMDOCK_SANDBOX=" + dir_.string(),
    };
}

void Sandbox::fail(const std::string& what) const
{
    std::string message = "armdock sandbox (" + dir_.string() + "): " + what;
    const auto log = readFileOr(managerLog());
    if (!log.empty())
        message += "\n--- systemd --user log ---\n" + tail(log, 2000);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_ / "logs", ec)) {
        auto text = readFileOr(entry.path());
        if (!text.empty())
            message += "\n--- " + entry.path().filename().string() + " ---\n" + tail(text, 2000);
    }
    throw std::runtime_error(message);
}

std::filesystem::path Sandbox::sourceOf(const std::string& option, const char* variable, const char* fallback)
{
    if (!option.empty())
        return option;
    const char* fromEnvironment = std::getenv(variable);
    return fromEnvironment && *fromEnvironment ? fromEnvironment : fallback;
}

void Sandbox::makeTree()
{
    baseDir_ = options_.baseDir.empty() ? fs::path("/tmp") : options_.baseDir;
    std::string tmpl;
    // A base folder of ours may vanish between the two steps (the last sandbox in it ended): retry.
    for (int attempt = 1;; ++attempt) {
        std::error_code ec;
        if (!fs::exists(baseDir_, ec) && fs::create_directories(baseDir_, ec))
            ::chmod(baseDir_.c_str(), 0711);
        tmpl = (baseDir_ / "armdock-sandbox.XXXXXX").string();
        if (::mkdtemp(tmpl.data()))
            break;
        if (errno != ENOENT || attempt == 3)
            throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    }
    dir_ = tmpl;
    cgroupName_ = "armdock-sandbox-" + dir_.filename().string().substr(std::string("armdock-sandbox.").size());
    // Folders on the way to the bus socket: traversable by other uids.
    ::chmod(dir_.c_str(), 0711);
    for (const char* sub : {"runtime", "config/systemd/user", "empty/system", "root/usr/bin", "root/usr/lib/docker",
             "state", "incoming", "containerd/root", "containerd/state", "docker/data", "docker/exec", "logs",
             "data-home", "state-home", "metrics"}) {
        fs::create_directories(dir_ / sub);
    }
    ::chmod(runtimeDir().c_str(), 0711);
    makeInaccessibleNodes();
    installExecutable(sourceOf(options_.engineSource, "ARMDOCK_SANDBOX_ENGINE", realDockerd), payloadPath("docker"));
    if (!options_.engineRunsFrom.empty()) {
        fs::create_directories((root() / options_.engineRunsFrom).parent_path());
        installExecutable(sourceOf(options_.engineSource, "ARMDOCK_SANDBOX_ENGINE", realDockerd), root() / options_.engineRunsFrom);
    }
    installExecutable(sourceOf(options_.dockerinitSource, "ARMDOCK_SANDBOX_DOCKERINIT", smallElf), payloadPath("dockerinit"));
    if (options_.containerdPayload)
        installExecutable("/usr/bin/containerd", payloadPath("containerd"));
    if (options_.runcPayload) {
        fs::create_directories(payloadPath("runc").parent_path());
        installExecutable("/usr/sbin/runc", payloadPath("runc"));
    }

    writeFile(dir_ / "dbus.conf",
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig>\n"
        "  <type>session</type>\n"
        "  <!-- overridden by the address given on the command line; dbus-daemon wants one -->\n"
        "  <listen>unix:tmpdir=/tmp</listen>\n"
        "  <policy context=\"default\">\n"
        "    <allow user=\"*\"/>\n"
        "    <allow own=\"*\"/>\n"
        "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
        "    <allow receive_sender=\"*\"/>\n"
        "    <allow eavesdrop=\"true\"/>\n"
        "  </policy>\n"
        "</busconfig>\n");
}

void Sandbox::makeInaccessibleNodes() const
{
    // systemd makes the same at boot: chr and blk are device 0:0, the socket
    // is a bound and closed AF_UNIX one. A failure only breaks units that need them.
    const fs::path dir = dir_ / "empty/inaccessible";
    fs::create_directories(dir / "dir");
    auto made = [&](const char* name, int rc) {
        if (rc != 0)
            std::cerr << "armdock sandbox: cannot make " << (dir / name) << ": " << std::strerror(errno) << "\n";
        ::chmod((dir / name).c_str(), 0000);
    };
    made("dir", 0);
    const int reg = ::open((dir / "reg").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0000);
    made("reg", reg < 0 ? -1 : ::close(reg));
    made("fifo", ::mkfifo((dir / "fifo").c_str(), 0000));
    made("chr", ::mknod((dir / "chr").c_str(), S_IFCHR | 0000, makedev(0, 0)));
    made("blk", ::mknod((dir / "blk").c_str(), S_IFBLK | 0000, makedev(0, 0)));
    const int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string sockPath = (dir / "sock").string();
    std::strncpy(address.sun_path, sockPath.c_str(), sizeof address.sun_path - 1);
    made("sock", sock < 0 || sockPath.size() >= sizeof address.sun_path
                     ? -1
                     : ::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address));
    if (sock >= 0)
        ::close(sock);
}

void Sandbox::writeBaseUnits()
{
    const auto d = dir_.string();
    const auto logs = (dir_ / "logs").string();
    writeUnit("dbus.socket",
        "[Unit]\nDescription=Sandbox D-Bus socket\n\n"
        "[Socket]\nListenStream=%t/bus\nSocketMode=0666\n");
    writeUnit("dbus.service",
        "[Unit]\nDescription=Sandbox D-Bus bus\nRequires=dbus.socket\n\n"
        "[Service]\nExecStart=/usr/bin/dbus-daemon --config-file=" + d +
            "/dbus.conf --address=systemd: --nofork --nopidfile --systemd-activation\n"
            "ExecReload=/usr/bin/busctl --address=unix:path=%t/bus call org.freedesktop.DBus /org/freedesktop/DBus "
            "org.freedesktop.DBus ReloadConfig\n"
            "StandardOutput=append:" + logs + "/dbus.log\nStandardError=inherit\n");
    writeUnit("containerd.service",
        "[Unit]\nDescription=Sandbox containerd\n\n"
        "[Service]\nType=notify\n"
        "ExecStart=" + (options_.containerdPayload ? payloadPath("containerd") : fs::path("/usr/bin/containerd")).string() + " --address " + containerdSocket().string() + " --root " + d +
            "/containerd/root --state " + d + "/containerd/state\n"
            "Delegate=yes\nKillMode=process\n"
            "StandardOutput=append:" + logs + "/containerd.log\nStandardError=inherit\n");
    writeUnit("docker.socket",
        "[Unit]\nDescription=Sandbox Docker socket\n" + std::string(options_.socketPartOfService ? "PartOf=docker.service\n" : "") + "\n"
        "[Socket]\nListenStream=" + dockerSocket().string() + "\nSocketMode=0660\n");
    std::string moreArgs;
    for (const auto& arg : options_.dockerdArgs)
        moreArgs += " " + arg;
    std::string cgroupParent;
    if (!cgroupName_.empty())
        cgroupParent = " --cgroup-parent=/" + cgroupName_ + "/docker";
    writeUnit("docker.service",
        "[Unit]\nDescription=Sandbox Docker engine\n"
        "Requires=docker.socket" + std::string(options_.containerdPayload ? "\nWants=" : " ") + "containerd.service\n"
        "After=docker.socket containerd.service\n\n"
        "[Service]\nType=notify\nNotifyAccess=all\n"
        "ExecStart=" + (options_.engineRunsFrom.empty() ? payloadPath("docker") : root() / options_.engineRunsFrom).string() + " -H fd:// --containerd=" + containerdSocket().string() +
            " --data-root=" + d + "/docker/data --exec-root=" + d + "/docker/exec --pidfile=" + d +
            "/docker/docker.pid --iptables=false --ip-masq=false --bridge=none --storage-driver=vfs" + cgroupParent + moreArgs +
            "\n"
            "ExecReload=/bin/kill -s HUP $MAINPID\n" +
            (options_.runcPayload ? "Environment=PATH=" + (root() / "usr/sbin").string() + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                                  : std::string()) +
            "StandardOutput=append:" + logs + "/docker.log\nStandardError=inherit\n" + options_.dockerServiceExtra);
    // Docker's guard as shipped, run by this sandbox's agent binary with its agent.toml.
    const fs::path agent = agentBinary();
    const char* guard = std::getenv("ARMDOCK_GUARD_DROPIN");
    if (!agent.empty() && fs::exists(agent) && guard && *guard) {
        std::string text = readFile(guard);
        replaceAll(text, "/usr/sbin/armdock-agent", agent.string());
        replaceAll(text, "/etc/armdock/agent.toml", (dir_ / "agent.toml").string());
        fs::create_directories(unitDir() / "docker.service.d");
        writeUnit("docker.service.d/armdock-guard.conf", text);
    }
}

void Sandbox::makeCgroups()
{
    // Without a cgroup of its own, a user manager running as root takes the
    // root of the hierarchy (/app.slice/docker.service...), and two sandboxes
    // would stop each other's units. Give it /armdock-sandbox-XXXX in every
    // hierarchy that tracks processes (cgroup2 / unified, name=systemd).
    const std::vector<fs::path> hierarchies = {
        fs::path(cgroupFs), fs::path(cgroupFs) / "unified", fs::path(cgroupFs) / "systemd"};
    for (const auto& h : hierarchies) {
        std::error_code ec;
        if (!fs::exists(h / "cgroup.procs", ec))
            continue;
        if (::mkdir((h / cgroupName_).c_str(), 0755) == 0 || errno == EEXIST)
            cgroups_.push_back(h / cgroupName_);
    }
    if (cgroups_.empty())
        std::cerr << "armdock sandbox: no writable cgroup hierarchy; the user manager shares the root cgroup\n";
}

void Sandbox::spawnManager()
{
    std::vector<std::string> args = {unshareBinary, "-m", "--propagation", "private", "/bin/sh", "-c",
        "mount --bind \"$1\" /run/systemd && exec " + std::string(systemdBinary) + " --user", "sh",
        (dir_ / "empty").string()};
    // In its own process group and the sandbox's cgroups; if the test process
    // dies (crash, timeout kill), SIGTERM makes the manager stop its units.
    SpawnSetup setup;
    setup.ownProcessGroup = true;
    for (const auto& cg : cgroups_)
        setup.cgroupProcsFiles.push_back((cg / "cgroup.procs").string());
    managerPid_ = spawnLogged(managerLog(), args, environment(), setup);
}

void Sandbox::waitForManager()
{
    auto managerGone = [this] {
        int status = 0;
        if (managerPid_ > 0 && ::waitpid(managerPid_, &status, WNOHANG) == managerPid_) {
            managerPid_ = -1;
            return true;
        }
        return false;
    };
    bool up = waitFor(
        [&] {
            if (managerGone())
                fail("systemd --user exited during start");
            return systemctl({"show", "--property=Version", "--value"}, std::chrono::seconds(5)).exitCode == 0;
        },
        options_.startTimeout, std::chrono::milliseconds(10));
    if (!up)
        fail("systemd --user did not answer systemctl --user within the start timeout");

    auto started = systemctl({"start", "dbus.socket", "dbus.service"}, options_.startTimeout);
    if (started.exitCode != 0)
        fail("starting dbus.socket dbus.service failed: " + started.output);
    // The manager joins the bus on its own once dbus.service runs.
    bool onBus = waitFor(
        [&] {
            if (managerGone())
                fail("systemd --user exited during start");
            return busctl({"status", "org.freedesktop.systemd1"}, std::chrono::seconds(5)).exitCode == 0;
        },
        options_.startTimeout, std::chrono::milliseconds(10));
    if (!onBus)
        fail("the user manager did not appear on the bus as org.freedesktop.systemd1");
}

CommandResult Sandbox::run(const std::vector<std::string>& argvIn, std::chrono::milliseconds timeout) const
{
    CommandResult result;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t all;
    sigemptyset(&all);
    sigaddset(&all, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<std::string> args = argvIn;
    std::vector<std::string> env = environment();
    auto argv = cStrings(args);
    auto envp = cStrings(env);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        result.output = "cannot run " + args.at(0) + ": " + std::strerror(rc);
        return result;
    }
    const auto deadline = Clock::now() + timeout;
    bool exited = false;
    int status = 0;
    bool open = true;
    while (open) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0)
            break;
        pollfd p{fds[0], POLLIN, 0};
        int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, exited ? 0 : 50)));
        if (n > 0) {
            char buffer[4096];
            ssize_t got = ::read(fds[0], buffer, sizeof buffer);
            if (got > 0)
                result.output.append(buffer, static_cast<size_t>(got));
            else if (got == 0 || errno != EINTR)
                open = false;
        } else if (exited) {
            break;  // exited and nothing more to read now (a grandchild may hold the pipe)
        }
        if (!exited && ::waitpid(pid, &status, WNOHANG) == pid)
            exited = true;
    }
    ::close(fds[0]);
    if (!exited) {
        if (::waitpid(pid, &status, WNOHANG) != pid) {
            if (Clock::now() >= deadline) {
                ::kill(pid, SIGKILL);
                result.output += "\n[armdock sandbox: killed after " + std::to_string(timeout.count()) + " ms: " +
                    joinArgs(args) + "]";
            }
            ::waitpid(pid, &status, 0);
        }
    }
    result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

CommandResult Sandbox::systemctl(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const
{
    std::vector<std::string> argv = {"systemctl", "--user", "--no-pager", "--no-ask-password"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, timeout);
}

CommandResult Sandbox::busctl(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const
{
    std::vector<std::string> argv = {"busctl", "--address=" + busAddress(), "--no-pager"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, timeout);
}

CommandResult Sandbox::docker(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const
{
    std::vector<std::string> argv = {"docker", "-H", "unix://" + dockerSocket().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, timeout);
}

void Sandbox::writeUnit(const std::string& name, const std::string& text) const
{
    writeFile(unitDir() / name, text);
}

void Sandbox::daemonReload() const
{
    auto r = systemctl({"daemon-reload"});
    if (r.exitCode != 0)
        fail("systemctl --user daemon-reload failed: " + r.output);
}

void Sandbox::startUnits(const std::vector<std::string>& units) const
{
    std::vector<std::string> args = {"start"};
    args.insert(args.end(), units.begin(), units.end());
    auto r = systemctl(args, options_.startTimeout);
    if (r.exitCode != 0) {
        std::vector<std::string> status = {"status", "--lines=0"};
        status.insert(status.end(), units.begin(), units.end());
        fail("systemctl --user start " + joinArgs(units) + " failed: " + r.output + "\n" + systemctl(status).output);
    }
}

void Sandbox::stopUnits(const std::vector<std::string>& units) const
{
    std::vector<std::string> args = {"stop"};
    args.insert(args.end(), units.begin(), units.end());
    auto r = systemctl(args, options_.startTimeout);
    if (r.exitCode != 0)
        fail("systemctl --user stop " + joinArgs(units) + " failed: " + r.output);
}

pid_t Sandbox::mainPid(const std::string& unit) const
{
    auto r = systemctl({"show", "--property=MainPID", "--value", unit}, std::chrono::seconds(10));
    if (r.exitCode != 0)
        return 0;
    return static_cast<pid_t>(std::atol(r.output.c_str()));
}

std::string Sandbox::activeState(const std::string& unit) const
{
    auto r = systemctl({"show", "--property=ActiveState", "--value", unit}, std::chrono::seconds(10));
    auto s = r.output;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

void Sandbox::startDocker()
{
    auto start = Clock::now();
    startUnits({"containerd.service", "docker.socket", "docker.service"});
    if (!waitFor([this] { return ping(std::chrono::milliseconds(500)); }, options_.startTimeout))
        fail("dockerd did not answer GET /_ping on " + dockerSocket().string());
    dockerStartSeconds_ = secondsSince(start);
}

bool Sandbox::ping(std::chrono::milliseconds timeout) const
{
    auto reply = dockerGet("/_ping", timeout);
    return reply && reply->status == 200 && reply->body == "OK";
}

std::optional<HttpReply> Sandbox::dockerGet(const std::string& path, std::chrono::milliseconds timeout) const
{
    return unixHttpGet(dockerSocket(), path, timeout);
}

void Sandbox::importBusyboxImage(const std::string& name) const
{
    const fs::path image = dir_ / ("image-" + name);
    fs::create_directories(image / "bin");
    fs::create_directories(image / "tmp");
    installExecutable("/bin/busybox", image / "bin/busybox");
    for (const char* applet : {"sh", "sleep", "true", "cat", "echo", "ls", "ps"}) {
        std::error_code ec;
        fs::create_symlink("busybox", image / "bin" / applet, ec);
    }
    auto r = run({"/bin/sh", "-c",
        "tar -C \"$1\" -c . | docker -H \"unix://$2\" import - \"$3\"", "sh", image.string(),
        dockerSocket().string(), name});
    if (r.exitCode != 0)
        fail("docker import of " + name + " failed: " + r.output);
}

std::filesystem::path Sandbox::writeAgentConfig(const std::string& extraToml,
    const std::map<std::string, std::string>& set) const
{
    auto q = [](const fs::path& p) { return "\"" + p.string() + "\""; };
    // section -> ordered (key, raw TOML value)
    std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> sections = {
        {"agent",
            {{"bus", "\"" + busAddress() + "\""}, {"state_dir", q(stateDir())}, {"dropin_dir", q(dropinDir())},
                {"log_level", "\"debug\""}, {"metrics_file", q(metricsFile())}}},
        {"docker",
            {{"service", "\"docker.service\""}, {"socket_unit", "\"docker.socket\""}, {"socket", q(dockerSocket())},
                {"stop_timeout_sec", "30"}, {"start_timeout_sec", "30"}, {"health_timeout_sec", "20"},
                {"grace_sec", "1"}, {"monitor_interval_sec", "0"}, {"dockerinit_pairing", "false"}}},
    };
    if (const char* launcher = std::getenv("ARMDOCK_SANDBOX_ENGINE"); launcher && *launcher) {
        // A launcher that executes the real dockerd (see engineSource):
        // /proc/MAINPID/exe is dockerd, never the upgraded target.
        sections[1].second.emplace_back("check_main_exe", "false");
    }
    for (const auto& [dotted, value] : set) {
        auto dot = dotted.find('.');
        if (dot == std::string::npos)
            throw std::invalid_argument("writeAgentConfig: key must be section.key: " + dotted);
        auto section = dotted.substr(0, dot);
        auto key = dotted.substr(dot + 1);
        auto it = std::find_if(sections.begin(), sections.end(), [&](const auto& s) { return s.first == section; });
        if (it == sections.end()) {
            sections.push_back({section, {}});
            it = sections.end() - 1;
        }
        auto kv = std::find_if(it->second.begin(), it->second.end(), [&](const auto& p) { return p.first == key; });
        if (kv != it->second.end())
            kv->second = value;
        else
            it->second.emplace_back(key, value);
    }
    std::string text = "# Written by armdock::test::Sandbox for " + dir_.string() + "\n";
    for (const auto& [section, keys] : sections) {
        text += "\n[" + section + "]\n";
        for (const auto& [key, value] : keys)
            text += key + " = " + value + "\n";
    }
    text += "\n[[payload]]\nname = \"docker\"\npath = " + q(payloadPath("docker")) +
        "\nmode = 0o755\nversion_args = [\"-v\"]\nengine = true\n";
    text += "\n[[payload]]\nname = \"dockerinit\"\npath = " + q(payloadPath("dockerinit")) + "\nmode = 0o755\n";
    if (!extraToml.empty())
        text += "\n" + extraToml + (extraToml.back() == '\n' ? "" : "\n");
    const fs::path file = dir_ / "agent.toml";
    writeFile(file, text);
    return file;
}

void Sandbox::agentUnit(const std::filesystem::path& binary, const std::filesystem::path& config,
    const std::map<std::string, std::string>& extraEnvironment, const std::string& extraServiceLines) const
{
    std::string text = "[Unit]\nDescription=armdock-agent (test sandbox)\n\n"
                       "[Service]\nType=notify\n"
                       "ExecStart=" + binary.string() + " --config " + config.string() + "\n"
                       "ExecReload=/bin/kill -HUP $MAINPID\n"
                       "Environment=DBUS_SESSION_BUS_ADDRESS=" + busAddress() + "\n"
                       "TimeoutStartSec=30\n"
                       // No journald in the sandbox: without INVOCATION_ID the agent logs to
                       // stdout, which goes to logs/armdock-agent.log.
                       "UnsetEnvironment=INVOCATION_ID\n"
                       "StandardOutput=append:" + (dir_ / "logs/armdock-agent.log").string() + "\n"
                       "StandardError=inherit\n";
    for (const auto& [key, value] : extraEnvironment)
        text += "Environment=\"" + key + "=" + value + "\"\n";
    text += extraServiceLines;
    if (!text.ends_with('\n'))
        text += '\n';
    writeUnit("armdock-agent.service", text);
    daemonReload();
}

void Sandbox::agentUnitSandboxedAs(const std::filesystem::path& shippedUnit, const std::filesystem::path& binary,
    const std::filesystem::path& config, const std::map<std::string, std::string>& extraEnvironment,
    const std::string& extraServiceLines) const
{
    for (const char* hidden : {"/tmp/", "/var/tmp/", "/home/", "/root/", "/run/user/"}) {
        if (dir_.string().starts_with(hidden))
            throw std::logic_error("armdock sandbox " + dir_.string() + " is under " + hidden +
                ", which PrivateTmp=/ProtectHome= hide from the unit; make the sandbox with SandboxOptions::baseDir");
    }
    const std::string sandboxing = serviceSandboxingLines(shippedUnit);
    const fs::path copy = dir_ / "bin" / binary.filename();
    installExecutable(binary, copy);
    agentUnit(copy, config, extraEnvironment, sandboxing + extraServiceLines);
}

bool Sandbox::waitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
    std::chrono::milliseconds every)
{
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (cond())
            return true;
        if (Clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(every);
    }
}

std::vector<pid_t> Sandbox::ownedPids() const
{
    std::set<pid_t> owned;
    // 1. Our cgroup tree in every hierarchy (units, shims, containers under --cgroup-parent).
    for (const auto& folder : cgroupFolders(cgroupName_))
        collectCgroupProcs(folder, owned);
    // 2. Descendants of the manager, and processes carrying our marker.
    const auto pids = allPids();
    std::map<pid_t, pid_t> parents;
    const std::string marker = "ARMDOCK_SANDBOX=" + dir_.string();
    for (pid_t pid : pids) {
        parents[pid] = parentOf(pid);
        std::string env = readFileOr("/proc/" + std::to_string(pid) + "/environ");
        size_t at = 0;
        while ((at = env.find(marker, at)) != std::string::npos) {
            bool starts = at == 0 || env[at - 1] == '\0';
            bool ends = at + marker.size() == env.size() || env[at + marker.size()] == '\0';
            if (starts && ends) {
                owned.insert(pid);
                break;
            }
            at += marker.size();
        }
    }
    if (managerPid_ > 0) {
        owned.insert(managerPid_);
        bool grew = true;
        while (grew) {
            grew = false;
            for (const auto& [pid, ppid] : parents) {
                if (owned.count(ppid) && !owned.count(pid)) {
                    owned.insert(pid);
                    grew = true;
                }
            }
        }
    }
    owned.erase(::getpid());
    std::vector<pid_t> out;
    for (pid_t pid : owned) {
        if (processAlive(pid))
            out.push_back(pid);
    }
    return out;
}

void Sandbox::shutdown()
{
    if (shutDown_ || dir_.empty())
        return;
    shutDown_ = true;

    // Remember who is ours (with start times, so a recycled PID is never hit).
    std::map<pid_t, unsigned long long> known;
    for (pid_t pid : ownedPids())
        known[pid] = processStartTime(pid);

    // Containers first: a container whose PID 1 ignores SIGTERM (busybox
    // sleep) would hold dockerd's stop for its 10 s stop timeout.
    std::set<pid_t> containers;
    for (const auto& folder : cgroupFolders(cgroupName_))
        collectCgroupProcs(folder / "docker", containers);
    for (pid_t pid : containers)
        ::kill(pid, SIGKILL);

    if (managerPid_ > 0) {
        // The manager stops its units on SIGTERM.
        ::kill(managerPid_, SIGTERM);
        int status = 0;
        bool reaped = waitFor([&] { return ::waitpid(managerPid_, &status, WNOHANG) == managerPid_; },
            std::chrono::seconds(15), std::chrono::milliseconds(5));
        if (!reaped) {
            std::cerr << "armdock sandbox: systemd --user (" << managerPid_ << ") did not stop in 15 s; killing\n";
            ::kill(managerPid_, SIGKILL);
            ::waitpid(managerPid_, &status, 0);
        }
        managerPid_ = -1;
    }

    // Whatever is left (containerd shims, containers, a unit the manager
    // could not stop, processes of ours that escaped): SIGKILL by PID.
    auto leftovers = [&] {
        std::set<pid_t> left;
        for (pid_t pid : ownedPids())
            left.insert(pid);
        for (const auto& [pid, start] : known) {
            if (processAlive(pid) && processStartTime(pid) == start)
                left.insert(pid);
        }
        return left;
    };
    bool clean = waitFor(
        [&] {
            auto left = leftovers();
            for (pid_t pid : left)
                ::kill(pid, SIGKILL);
            return left.empty();
        },
        std::chrono::seconds(10), std::chrono::milliseconds(10));
    if (!clean) {
        std::cerr << "armdock sandbox: processes still alive after cleanup:";
        for (pid_t pid : leftovers())
            std::cerr << ' ' << pid;
        std::cerr << "\n";
    }

    // A killed process keeps its cgroup busy until its parent (often PID 1
    // by now) reaps it: retry the rmdir for a while.
    bool removed = waitFor(
        [&] {
            for (const auto& folder : cgroupFolders(cgroupName_))
                removeCgroupTree(folder);
            return cgroupFolders(cgroupName_).empty();
        },
        std::chrono::seconds(5), std::chrono::milliseconds(10));
    if (!removed)
        std::cerr << "armdock sandbox: cgroup folders " << cgroupName_ << " are still busy\n";

    for (const auto& mountPoint : mountsUnder(dir_))
        ::umount2(mountPoint.c_str(), MNT_DETACH);

    const char* keep = std::getenv("ARMDOCK_KEEP_SANDBOX");
    if (options_.keepDir || (keep && *keep && std::string(keep) != "0")) {
        std::cerr << "armdock sandbox: kept " << dir_ << "\n";
        return;
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
    if (ec)
        std::cerr << "armdock sandbox: cannot remove " << dir_ << ": " << ec.message() << "\n";
    if (!options_.baseDir.empty())
        ::rmdir(baseDir_.c_str());  // only once empty: another sandbox may still be in it
}

}  // namespace armdock::test
