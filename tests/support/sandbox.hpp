// A throw-away world for integration tests: a private D-Bus bus, a real
// systemd user manager in a private mount namespace and (optionally) a real
// dockerd with a containerd of its own, all in a fresh folder under /tmp (or
// under SandboxOptions::baseDir).
// See tests/support/README.md. Everything it starts it stops again by PID in
// the destructor, also when the test failed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace armdock::test {

struct SandboxOptions {
    bool startDocker = true;  // start containerd, docker.socket and docker.service
    // Extra unit files written before the manager starts: name -> text.
    std::map<std::string, std::string> extraUnits;
    // Of those (or of any unit), the ones to start once the bus is up.
    std::vector<std::string> startUnits;
    std::chrono::milliseconds startTimeout{60000};  // per step
    // Lines appended to docker.service's [Service] section, e.g.
    // "Restart=on-failure\nStartLimitBurst=3\n" as in Debian's unit.
    std::string dockerServiceExtra;
    // Leave the temp folder (never the processes) after the end; the
    // environment variable ARMDOCK_KEEP_SANDBOX=1 does the same.
    bool keepDir = false;
    // The executable installed as the engine payload (usr/bin/dockerd in the
    // sandbox's root). Empty: $ARMDOCK_SANDBOX_ENGINE if set, else the real
    // /usr/sbin/dockerd. packaging/build-static.sh sets the variable to an
    // aarch64 launcher of the real dockerd (tests/engines/engine_launcher.c),
    // so that the aarch64 agent under qemu accepts the sandbox's engine.
    std::string engineSource;
    // The same for the dockerinit payload (usr/lib/docker/dockerinit):
    // $ARMDOCK_SANDBOX_DOCKERINIT, else /bin/true. It is never run, but a
    // rollback checks that it is an executable for the agent's machine.
    std::string dockerinitSource;
    // Empty: docker.service runs the engine payload's target. Else a path
    // under root() where a copy of the engine is installed and run instead: a
    // unit that runs another file than the one the agent upgrades.
    std::filesystem::path engineRunsFrom;
    // The folder in which the sandbox's own folder is made
    // (BASE/armdock-sandbox.XXXXXX); created when missing and removed again
    // when the last sandbox in it is gone. Empty: /tmp. A unit with
    // PrivateTmp=yes or ProtectHome=yes (the shipped agent unit) cannot see a
    // sandbox under /tmp, /var/tmp, /home, /root or /run/user: give such a
    // test e.g. /var/lib/armdock-test.
    std::filesystem::path baseDir;
    // containerd.service runs a copy of the real containerd installed as the
    // payload "containerd" (usr/bin/containerd in the root), and
    // docker.service only Wants= it, as Debian's unit does: stopping
    // containerd leaves dockerd running. Else the unit runs /usr/bin/containerd
    // and docker.service Requires= it.
    bool containerdPayload = false;
    // Where under root() the engine payload lies (and docker.service runs it):
    // usr/bin/dockerd as docker-ce has it, or usr/sbin/dockerd as Debian's
    // docker.io (a test that installs that package into the root).
    std::filesystem::path enginePath = "usr/bin/dockerd";
    // More arguments on dockerd's command line, e.g. {"--live-restore"}.
    std::vector<std::string> dockerdArgs;
    // docker.socket is PartOf=docker.service, as Docker 1.10's unit was
    // (a stop or restart of the service takes the socket with it).
    bool socketPartOfService = false;
    // docker.service finds its programs in root's usr/sbin first (its PATH),
    // where a copy of the real runc is installed as the payload "runc": the
    // runc dockerd's /version reports.
    bool runcPayload = false;
};

struct CommandResult {
    int exitCode = -1;  // -1: killed or could not run
    std::string output;  // stdout and stderr together
};

struct HttpReply {
    int status = 0;
    std::string body;
};

// systemd's object path of a unit ("docker.service" ->
// /org/freedesktop/systemd1/unit/docker_2eservice): every byte that is not
// a letter or digit becomes _XX.
std::string systemdUnitPath(const std::string& unit);

// argv/envp for execve: pointers into `strings`, ending with nullptr.
std::vector<char*> cStrings(std::vector<std::string>& strings);
// How spawnLogged sets up the child before its execve.
struct SpawnSetup {
    bool ownProcessGroup = false;               // setpgid(0, 0)
    std::vector<std::string> cgroupProcsFiles;  // the child writes its PID into each (joins those cgroups)
    int deathSignal = SIGTERM;                  // sent to the child when the test process dies
};
// Forks and execs args[0] with args and env: stdin from /dev/null, stdout
// and stderr appended to `log`, no blocked signals; the child gets SIGTERM
// (setup.deathSignal) when the test process dies (PR_SET_PDEATHSIG), and never outlives a parent
// that died before that was set. Returns the child's PID; throws when the log
// cannot be opened or fork fails (the child exits 127 if execve fails).
pid_t spawnLogged(const std::filesystem::path& log, std::vector<std::string> args, std::vector<std::string> env,
                  const SpawnSetup& setup = {});

class Sandbox {
public:
    explicit Sandbox(SandboxOptions options = {});
    ~Sandbox();
    Sandbox(const Sandbox&) = delete;
    Sandbox& operator=(const Sandbox&) = delete;

    // Places.
    const std::filesystem::path& dir() const { return dir_; }  // the temp folder
    std::string busAddress() const;  // unix:path=RUNTIME/bus
    std::filesystem::path runtimeDir() const { return dir_ / "runtime"; }
    std::filesystem::path configHome() const { return dir_ / "config"; }
    std::filesystem::path unitDir() const { return dir_ / "config/systemd/user"; }
    std::filesystem::path root() const { return dir_ / "root"; }  // payload root
    // "docker" -> root/usr/bin/dockerd (SandboxOptions::enginePath), "dockerinit" -> root/usr/lib/docker/dockerinit.
    std::filesystem::path payloadPath(const std::string& name) const;
    std::filesystem::path stateDir() const { return dir_ / "state"; }
    std::filesystem::path dropinDir() const { return dir_ / "incoming"; }
    std::filesystem::path metricsFile() const { return dir_ / "metrics/armdock.prom"; }  // the agent's agent.metrics_file
    std::filesystem::path dockerSocket() const { return dir_ / "docker.sock"; }
    std::filesystem::path containerdSocket() const { return dir_ / "containerd.sock"; }
    std::filesystem::path managerLog() const { return dir_ / "systemd-user.log"; }
    pid_t managerPid() const { return managerPid_; }

    // Environment for clients of this sandbox (PATH, HOME, XDG_RUNTIME_DIR,
    // XDG_CONFIG_HOME, DBUS_SESSION_BUS_ADDRESS, ARMDOCK_SANDBOX), KEY=VALUE.
    std::vector<std::string> environment() const;

    // Runs argv[0] (searched in PATH) with environment(); kills it after timeout.
    CommandResult run(const std::vector<std::string>& argv,
        std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
    // `systemctl --user --no-pager ARGS`.
    CommandResult systemctl(const std::vector<std::string>& args,
        std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
    // `busctl --address=BUS ARGS`.
    CommandResult busctl(const std::vector<std::string>& args,
        std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
    // `docker -H unix://SOCKET ARGS` (the docker.io client).
    CommandResult docker(const std::vector<std::string>& args,
        std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;

    // Units of the user manager.
    void writeUnit(const std::string& name, const std::string& text) const;
    void daemonReload() const;  // throws on failure
    void startUnits(const std::vector<std::string>& units) const;  // throws on failure
    void stopUnits(const std::vector<std::string>& units) const;  // throws on failure
    pid_t mainPid(const std::string& unit) const;  // 0 when not running
    std::string activeState(const std::string& unit) const;  // "active", "inactive", "failed"...
    pid_t dockerMainPid() const { return mainPid("docker.service"); }

    // Docker.
    void startDocker();  // containerd + docker.socket + docker.service, then waits for /_ping
    bool ping(std::chrono::milliseconds timeout = std::chrono::seconds(2)) const;  // GET /_ping == "OK"
    // A plain HTTP/1.0 GET on the docker socket; nullopt when nothing answers.
    std::optional<HttpReply> dockerGet(const std::string& path,
        std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
    // Builds image NAME from busybox-static (no registry) with `docker import`.
    void importBusyboxImage(const std::string& name = "armdock-busybox") const;

    // The agent.
    // Writes DIR/agent.toml for this sandbox and returns its path. `set`
    // replaces or adds keys: {"docker.grace_sec", "3"} (values are raw TOML);
    // extraToml is appended as is (new tables, more [[payload]]s).
    std::filesystem::path writeAgentConfig(const std::string& extraToml = "",
        const std::map<std::string, std::string>& set = {}) const;
    // Writes armdock-agent.service (Type=notify, ExecStart=BINARY --config CONFIG,
    // ExecReload=kill -HUP, DBUS_SESSION_BUS_ADDRESS, output to logs/armdock-agent.log)
    // and reloads the manager. Start it with startUnits({"armdock-agent.service"}).
    void agentUnit(const std::filesystem::path& binary, const std::filesystem::path& config,
        const std::map<std::string, std::string>& extraEnvironment = {},
        const std::string& extraServiceLines = "") const;
    std::filesystem::path agentLog() const { return dir_ / "logs/armdock-agent.log"; }
    // agentUnit() under the sandboxing of a shipped unit file: its
    // serviceSandboxingLines(), as written, then extraServiceLines. The
    // binary runs from a copy in DIR/bin, since PrivateTmp= and ProtectHome=
    // hide a build folder under /tmp or /home (203/EXEC). Throws when dir()
    // lies in a folder they hide (make the sandbox with SandboxOptions::baseDir).
    void agentUnitSandboxedAs(const std::filesystem::path& shippedUnit, const std::filesystem::path& binary,
        const std::filesystem::path& config, const std::map<std::string, std::string>& extraEnvironment = {},
        const std::string& extraServiceLines = "") const;

    // Polls cond every few milliseconds until true or the deadline passes.
    static bool waitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
        std::chrono::milliseconds every = std::chrono::milliseconds(5));

    // PIDs of every process this sandbox owns right now (its cgroup, the
    // manager's descendants, processes carrying ARMDOCK_SANDBOX=DIR).
    std::vector<pid_t> ownedPids() const;
    // Stops everything now (what the destructor does); idempotent.
    void shutdown();

    // Seconds the start took (manager on the bus; dockerd up to a ping).
    double managerStartSeconds() const { return managerStartSeconds_; }
    double dockerStartSeconds() const { return dockerStartSeconds_; }

private:
    void makeTree();
    // DIR/empty/inaccessible/{dir,reg,fifo,sock,chr,blk}, mode 0000: what
    // InaccessiblePaths= (and so ProtectHome=yes) mounts from
    // /run/systemd/inaccessible/; without them such a unit fails with 226/NAMESPACE.
    void makeInaccessibleNodes() const;
    // SandboxOptions::engineSource / dockerinitSource, or their variables, or the defaults.
    static std::filesystem::path sourceOf(const std::string& option, const char* variable, const char* fallback);
    void writeBaseUnits();
    void makeCgroups();
    void spawnManager();
    void waitForManager();
    [[noreturn]] void fail(const std::string& what) const;

    SandboxOptions options_;
    std::filesystem::path baseDir_;  // where dir_ was made
    std::filesystem::path dir_;
    std::vector<std::filesystem::path> cgroups_;  // our cgroup in each hierarchy that tracks processes
    std::string cgroupName_;
    pid_t managerPid_ = -1;
    bool shutDown_ = false;
    double managerStartSeconds_ = 0;
    double dockerStartSeconds_ = 0;
};

// The build dir of the test engines and the agent, from the environment that
// meson test sets (ARMDOCK_ENGINES_DIR, ARMDOCK_AGENT_BINARY); empty when unset.
std::filesystem::path enginesDir();
std::filesystem::path agentBinary();
// armdockctl (ARMDOCKCTL_BINARY) and the source tree's ansible/ (ARMDOCK_ANSIBLE_DIR); empty when unset.
std::filesystem::path armdockctlBinary();
std::filesystem::path ansibleDir();
// The source tree's units/armdock-agent.service (ARMDOCK_AGENT_UNIT, set by meson test); empty when unset.
std::filesystem::path shippedAgentUnit();

// The [Service] lines of a unit file from its first NoNewPrivileges= to the
// end of the section, as written (comments and blank lines dropped): the
// shipped agent unit's sandboxing (PrivateTmp=, ProtectHome=, ...). Throws
// when the file cannot be read or has no such line.
std::string serviceSandboxingLines(const std::filesystem::path& unitFile);

// Reads a whole file; throws when it cannot.
std::string readFile(const std::filesystem::path& file);
// Writes a whole file (truncating) with the given mode; throws when it cannot.
void writeFile(const std::filesystem::path& file, const std::string& text, mode_t mode = 0644);
// Copies an executable into place: root-owned (when we are root), mode 0755.
void installExecutable(const std::filesystem::path& from, const std::filesystem::path& to);

// True while a process with that PID exists and is not a zombie.
bool processAlive(pid_t pid);

}  // namespace armdock::test
