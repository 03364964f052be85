// armdockctl end to end: every command against a real agent in the test
// sandbox (systemd user manager, dbus-daemon, socket-activated dockerd), the
// exit code of each outcome, the plain-line output that logs and CI see, and
// the progress bar on a pseudo-terminal (util-linux `script`).
//
// One sandbox and one agent serve the whole suite (a start costs seconds);
// every test leaves the agent idle for the next.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "agent_client.hpp"
#include "core/sha_digest.hpp"
#include "dbus/agent_names.hpp"
#include "dbus/sdbus_compat.hpp"
#include "minisign_tool.hpp"
#include "sandbox.hpp"

namespace armdock::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string sha256Of(const fs::path& file) { return sha256OfFile(file); }

// A child process with stdout and stderr captured apart.
class Child {
public:
    struct Options {
        fs::path cwd;
        std::optional<uid_t> uid;  // run as this uid (and gid) instead of root
    };

    Child(const std::vector<std::string>& argv, const std::vector<std::string>& env, const Options& options = {})
    {
        int out[2], err[2];
        if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
            throw std::runtime_error("pipe failed");
        std::vector<char*> args, envp;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        for (const auto& e : env)
            envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::dup2(out[1], 1);
            ::dup2(err[1], 2);
            if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0)
                ::_exit(126);
            if (options.uid) {
                if (::setgroups(0, nullptr) != 0 || ::setgid(*options.uid) != 0 || ::setuid(*options.uid) != 0)
                    ::_exit(126);
            }
            ::execve(args[0], args.data(), envp.data());
            ::_exit(127);
        }
        ::close(out[1]);
        ::close(err[1]);
        outFd_ = out[0];
        errFd_ = err[0];
    }

    ~Child()
    {
        if (pid_ > 0 && exitCode_ == -2) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        closeFds();
    }

    // Reads what is there (waiting up to `wait` for something).
    void pump(std::chrono::milliseconds wait)
    {
        pollfd fds[2] = {{outFd_, POLLIN, 0}, {errFd_, POLLIN, 0}};
        if (::poll(fds, 2, static_cast<int>(wait.count())) <= 0)
            return;
        char buffer[4096];
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
            if (n > 0)
                (i == 0 ? out_ : err_).append(buffer, static_cast<std::size_t>(n));
            else {
                ::close(fds[i].fd);
                (i == 0 ? outFd_ : errFd_) = -1;
            }
        }
    }

    // Waits until stdout holds `text`.
    bool waitForOutput(const std::string& text, std::chrono::milliseconds timeout)
    {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (out_.find(text) == std::string::npos) {
            if (std::chrono::steady_clock::now() >= deadline || (outFd_ < 0 && errFd_ < 0))
                return false;
            pump(50ms);
        }
        return true;
    }

    // Waits for the exit (SIGKILL after the timeout: returns -1).
    int wait(std::chrono::milliseconds timeout = 60s)
    {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (outFd_ >= 0 || errFd_ >= 0) {
            if (std::chrono::steady_clock::now() >= deadline)
                break;
            pump(50ms);
        }
        int status = 0;
        while (true) {
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_)
                break;
            if (std::chrono::steady_clock::now() >= deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                exitCode_ = -1;
                return exitCode_;
            }
            std::this_thread::sleep_for(5ms);
        }
        exitCode_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return exitCode_;
    }

    void signal(int sig) { ::kill(pid_, sig); }
    const std::string& out() const { return out_; }
    const std::string& err() const { return err_; }

private:
    void closeFds()
    {
        if (outFd_ >= 0)
            ::close(outFd_);
        if (errFd_ >= 0)
            ::close(errFd_);
        outFd_ = errFd_ = -1;
    }

    pid_t pid_ = -1;
    int outFd_ = -1, errFd_ = -1;
    int exitCode_ = -2;
    std::string out_, err_;
};

struct Ctl {
    int code = -1;
    std::string out, err;
};

std::ostream& operator<<(std::ostream& os, const Ctl& r)
{
    return os << "exit " << r.code << "\n--- stdout ---\n" << r.out << "--- stderr ---\n" << r.err;
}

std::vector<std::string> lines(const std::string& text)
{
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

class ArmdockctlTest : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        ASSERT_FALSE(armdockctlBinary().empty()) << "ARMDOCKCTL_BINARY is not set (run through meson test)";
        sandbox_ = new Sandbox();
        // A silent engine answers nothing: the health check waits (that is
        // the window the busy/cancel/timeout tests need) until 20 s.
        signer_ = makeMinisignKey(sandbox_->dir() / "trusted.d", "release");
        fs::create_directories(sandbox_->dir() / "signing");
        fs::rename(signer_.secretKey, sandbox_->dir() / "signing/release.key");
        signer_.secretKey = sandbox_->dir() / "signing/release.key";
        auto config = sandbox_->writeAgentConfig("[trust]\nkeys = \"" + (sandbox_->dir() / "trusted.d").string() + "\"\n",
                                                 {{"docker.health_timeout_sec", "20"}, {"docker.grace_sec", "1"}});
        sandbox_->agentUnit(agentBinary(), config);
        sandbox_->startUnits({"armdock-agent.service"});
        ASSERT_TRUE(AgentClient::waitForAgent(sandbox_->busAddress()));
        client_ = new AgentClient(sandbox_->busAddress());
        original_ = sandbox_->dir() / "original-dockerd";
        fs::copy_file(sandbox_->payloadPath("docker"), original_);
    }

    static void TearDownTestSuite()
    {
        delete client_;
        client_ = nullptr;
        if (sandbox_ && ::testing::UnitTest::GetInstance()->failed_test_count() > 0 && fs::exists(sandbox_->agentLog()))
            std::cerr << "---- agent log ----\n" << readFile(sandbox_->agentLog()) << "\n-------------------\n";
        delete sandbox_;
        sandbox_ = nullptr;
    }

    void SetUp() override
    {
        if (!sandbox_)
            GTEST_SKIP() << "no sandbox";
        ASSERT_TRUE(waitIdle()) << "the agent is busy from an earlier test";
    }

    static bool waitIdle(std::chrono::milliseconds timeout = 60s)
    {
        return Sandbox::waitFor(
            [] {
                try {
                    const auto state = client_->property("State");
                    return state == "idle" || state == "failed";
                } catch (const std::exception&) {
                    return false;
                }
            },
            timeout, 20ms);
    }

    static std::vector<std::string> env(const std::vector<std::string>& extra = {})
    {
        auto e = sandbox_->environment();
        e.insert(e.end(), extra.begin(), extra.end());
        return e;
    }

    static std::vector<std::string> argv(const std::vector<std::string>& args)
    {
        std::vector<std::string> a{armdockctlBinary().string(), "--bus", sandbox_->busAddress()};
        a.insert(a.end(), args.begin(), args.end());
        return a;
    }

    static Ctl ctl(const std::vector<std::string>& args, const Child::Options& options = {})
    {
        Child child(argv(args), env(), options);
        Ctl r;
        r.code = child.wait(90s);
        r.out = child.out();
        r.err = child.err();
        return r;
    }

    // A copy of the sandbox's first dockerd with a marker appended: another
    // file that runs and reports the same version.
    static fs::path goodEngine(const std::string& marker, const fs::path& folder = {})
    {
        const fs::path dir = folder.empty() ? sandbox_->dir() : folder;
        fs::create_directories(dir);
        fs::path file = dir / ("engine-" + marker);
        fs::copy_file(original_, file, fs::copy_options::overwrite_existing);
        std::ofstream(file, std::ios::app | std::ios::binary) << marker;
        fs::permissions(file, fs::perms(0755));
        return file;
    }

    static fs::path testEngine(const std::string& name)
    {
        fs::path file = sandbox_->dir() / ("engine-" + name);
        installExecutable(enginesDir() / name, file);
        return file;
    }

    static std::string installedSha() { return sha256Of(sandbox_->payloadPath("docker")); }

    static inline Sandbox* sandbox_ = nullptr;
    static inline AgentClient* client_ = nullptr;
    static inline fs::path original_;
    static inline MinisignKeyPair signer_;
};

// ---- no agent needed ----------------------------------------------------

TEST_F(ArmdockctlTest, VersionHelpAndUsageErrors)
{
    auto version = ctl({"--version"});
    EXPECT_EQ(version.code, 0) << version;
    EXPECT_NE(version.out.find("armdockctl "), std::string::npos) << version;
    for (const char* command : {"status", "upgrade", "rollback", "cancel", "backups", "payloads", "reload", "watch"}) {
        auto help = ctl({command, "--help"});
        EXPECT_EQ(help.code, 0) << command << "\n" << help;
        EXPECT_NE(help.out.find(std::string("Usage: armdockctl ") + command), std::string::npos) << help;
    }
    auto help = ctl({"--help"});
    EXPECT_NE(help.out.find("7 agent not running"), std::string::npos) << help;
    EXPECT_EQ(ctl({"upgrade"}).code, 2);                                // nothing to upgrade
    EXPECT_EQ(ctl({"upgrade", "--docker", "x", "--sha256", "nohex"}).code, 2);
    EXPECT_EQ(ctl({"frobnicate"}).code, 2);
    EXPECT_EQ(ctl({}).code, 2);
}

TEST_F(ArmdockctlTest, NoBusMeansAgentNotRunning)
{
    Child child({armdockctlBinary().string(), "--bus", "unix:path=" + (sandbox_->dir() / "no-such-bus").string(), "status"}, env());
    EXPECT_EQ(child.wait(), 7) << child.err();
    EXPECT_NE(child.err().find("systemctl start armdock-agent"), std::string::npos) << child.err();
}

// ---- status, upgrade, backups -------------------------------------------

TEST_F(ArmdockctlTest, StatusOfAnIdleAgentWithDockerHealth)
{
    auto text = ctl({"status", "--docker-socket", sandbox_->dockerSocket().string()});
    ASSERT_EQ(text.code, 0) << text;
    EXPECT_NE(text.out.find("State:        idle"), std::string::npos) << text;
    EXPECT_NE(text.out.find("Engine:       20.10.24+dfsg1"), std::string::npos) << text;
    EXPECT_NE(text.out.find("Docker:       healthy"), std::string::npos) << text;
    EXPECT_EQ(text.err, "");

    auto json = ctl({"status", "--json", "--docker-socket", sandbox_->dockerSocket().string()});
    ASSERT_EQ(json.code, 0) << json;
    auto j = nlohmann::json::parse(json.out);
    EXPECT_EQ(j["state"], "idle");
    EXPECT_EQ(j["running"], false);
    EXPECT_EQ(j["current_version"], "20.10.24+dfsg1");
    EXPECT_TRUE(j["docker"]["healthy"].get<bool>()) << json.out;
    EXPECT_EQ(j["docker"]["version"], "20.10.24+dfsg1");
    EXPECT_TRUE(j.contains("last_result") && j.contains("last_error") && j.contains("backups") && j.contains("transaction"));

    // A socket nobody serves: reported, not fatal.
    auto dead = ctl({"status", "--json", "--docker-socket", (sandbox_->dir() / "nothing.sock").string()});
    ASSERT_EQ(dead.code, 0) << dead;
    auto d = nlohmann::json::parse(dead.out);
    EXPECT_FALSE(d["docker"]["healthy"].get<bool>());
    EXPECT_NE(d["docker"]["error"].get<std::string>(), "");
}

TEST_F(ArmdockctlTest, UpgradeFromARelativePathPrintsOneLinePerChange)
{
    const std::size_t backupsBefore = client_->listBackups().size();
    fs::path engine = goodEngine("relative", sandbox_->dir() / "new");
    const std::string sha = sha256Of(engine);
    // Relative to the caller's folder: new/engine-relative from the sandbox dir.
    auto r = ctl({"upgrade", "--docker", "new/engine-relative", "--sha256", "docker=" + sha}, Child::Options{sandbox_->dir(), std::nullopt});
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_EQ(installedSha(), sha);
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out.find('\r'), std::string::npos) << "no terminal control in plain output";
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos);

    auto l = lines(r.out);
    ASSERT_GE(l.size(), 4u) << r;
    const std::string tx = client_->property("Transaction");
    EXPECT_EQ(l.front(), "upgrade " + tx + " started");
    EXPECT_TRUE(l.back().starts_with("success: ")) << l.back();
    EXPECT_TRUE(l.back().ends_with("(transaction " + tx + ")")) << l.back();
    const std::regex progressLine(R"(\[ {0,2}\d{1,3}%\] [a-z-]+(: .+)?)");
    std::vector<std::string> states;
    for (std::size_t i = 1; i + 1 < l.size(); ++i) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(l[i], m, progressLine)) << "line " << i << ": " << l[i];
        const std::string state = l[i].substr(7, l[i].find(':') == std::string::npos ? std::string::npos : l[i].find(':') - 7);
        if (states.empty() || states.back() != state)
            states.push_back(state);
        if (i > 1) {
            EXPECT_NE(l[i], l[i - 1]) << "one line per change, no repeats";
        }
    }
    // Every step of the transaction was seen, in order.
    const std::vector<std::string> expected{"verifying", "staging", "stopping", "swapping", "starting", "checking", "idle"};
    std::size_t at = 0;
    for (const auto& s : states)
        if (at < expected.size() && s == expected[at])
            ++at;
    EXPECT_EQ(at, expected.size()) << r.out;

    // status and backups now tell about it.
    auto status = ctl({"status", "--json"});
    ASSERT_EQ(status.code, 0) << status;
    auto j = nlohmann::json::parse(status.out);
    EXPECT_EQ(j["transaction"], tx);
    EXPECT_EQ(j["last_result"], "success");
    EXPECT_EQ(j["last_error"], "");
    EXPECT_EQ(j["backups"].get<std::size_t>(), backupsBefore + 1);
    auto text = ctl({"status"});
    EXPECT_NE(text.out.find("Last result:  success"), std::string::npos) << text;
    EXPECT_NE(text.out.find("Transaction:  " + tx), std::string::npos) << text;

    auto backups = ctl({"backups"});
    ASSERT_EQ(backups.code, 0) << backups;
    auto bl = lines(backups.out);
    ASSERT_EQ(bl.size(), backupsBefore + 2) << backups;  // header + rows
    EXPECT_TRUE(bl[0].starts_with("ID")) << bl[0];
    EXPECT_NE(bl[1].find("20.10.24+dfsg1"), std::string::npos) << bl[1];
    auto bj = ctl({"backups", "--json"});
    ASSERT_EQ(bj.code, 0) << bj;
    auto list = nlohmann::json::parse(bj.out);
    ASSERT_EQ(list.size(), backupsBefore + 1);
    EXPECT_EQ(list[0]["id"], std::get<0>(client_->listBackups()[0]));
    EXPECT_EQ(list[0]["version"], "20.10.24+dfsg1");
    EXPECT_TRUE(list[0]["created"].get<std::string>().ends_with("Z"));
}

// What a fleet rollout compares before it upgrades a host: each target and the SHA-256 installed there.
TEST_F(ArmdockctlTest, PayloadsListsEachTargetWithWhatIsInstalledThere)
{
    auto r = ctl({"payloads", "--json"});
    ASSERT_EQ(r.code, 0) << r;
    auto list = nlohmann::json::parse(r.out);
    ASSERT_EQ(list.size(), 2u) << r.out;
    EXPECT_EQ(list[0]["name"], "docker");
    EXPECT_EQ(list[0]["path"], sandbox_->payloadPath("docker").string());
    EXPECT_EQ(list[0]["present"], true);
    EXPECT_EQ(list[0]["sha256"], installedSha());
    EXPECT_EQ(list[0]["link"], "");
    EXPECT_EQ(list[1]["name"], "dockerinit");
    EXPECT_EQ(list[1]["sha256"], sha256Of(sandbox_->payloadPath("dockerinit")));
    auto text = ctl({"payloads"});
    ASSERT_EQ(text.code, 0) << text;
    auto rows = lines(text.out);
    ASSERT_EQ(rows.size(), 3u) << text;
    EXPECT_TRUE(rows[0].starts_with("NAME")) << rows[0];
    EXPECT_NE(rows[1].find(installedSha() + "  " + sandbox_->payloadPath("docker").string()), std::string::npos) << rows[1];
}

TEST_F(ArmdockctlTest, FastDryRunsNeverMissFinished)
{
    const std::string before = installedSha();
    fs::path engine = goodEngine("dry-run");
    for (int i = 0; i < 3; ++i) {
        const auto start = std::chrono::steady_clock::now();
        auto r = ctl({"upgrade", "--dry-run", "--timeout", "60", "--docker", engine.string()});
        ASSERT_EQ(r.code, 0) << r;
        EXPECT_TRUE(lines(r.out).back().starts_with("success: ")) << r;
        EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
    }
    EXPECT_EQ(installedSha(), before);
}

TEST_F(ArmdockctlTest, RejectedInputExits4WithTheAgentsMessage)
{
    const std::string before = installedSha();
    // Not an ELF executable.
    fs::path script = sandbox_->dir() / "not-elf";
    writeFile(script, "#!/bin/sh\necho hi\n", 0755);
    auto r = ctl({"upgrade", "--docker", script.string()});
    EXPECT_EQ(r.code, 4) << r;
    EXPECT_TRUE(r.err.starts_with("armdockctl: ")) << r;
    EXPECT_NE(r.err.find(script.string()), std::string::npos) << r;
    EXPECT_EQ(r.err.find("io.armdock.Agent1.Error"), std::string::npos) << "no D-Bus dump: " << r.err;
    EXPECT_EQ(r.err.find("org.freedesktop"), std::string::npos) << r.err;

    // Missing file, relative.
    r = ctl({"upgrade", "--docker", "does/not/exist"}, Child::Options{sandbox_->dir(), std::nullopt});
    EXPECT_EQ(r.code, 4) << r;
    EXPECT_NE(r.err.find((sandbox_->dir() / "does/not/exist").string()), std::string::npos) << r;

    // A digest that does not match (found while copying: a rejected transaction).
    fs::path engine = goodEngine("bad-digest");
    r = ctl({"upgrade", "--docker", engine.string(), "--sha256", "docker=" + std::string(64, '0')});
    EXPECT_EQ(r.code, 4) << r;
    EXPECT_NE(r.err.find("rejected"), std::string::npos) << r;
    EXPECT_EQ(installedSha(), before);
}

TEST_F(ArmdockctlTest, TheSignatureBesideAFileIsSentByItself)
{
    const fs::path engine = goodEngine("signed", sandbox_->dir() / "signed");
    signWithMinisign(signer_, engine, "version=20.10.24");
    auto r = ctl({"upgrade", "--timeout", "60", "--docker", engine.string()});
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_NE(r.err.find("payload docker: sending its signature " + engine.string() + ".minisig"), std::string::npos) << r;
    EXPECT_EQ(installedSha(), sha256Of(engine));
    EXPECT_NE(readFile(sandbox_->agentLog()).find("is signed by key " + signer_.keyId), std::string::npos);

    // A stranger's signature beside the file: refused, exit 4, nothing changed.
    const std::string before = installedSha();
    const fs::path other = goodEngine("stranger", sandbox_->dir() / "stranger");
    const MinisignKeyPair stranger = makeMinisignKey(sandbox_->dir() / "stranger-keys", "stranger");
    signWithMinisign(stranger, other, "version=20.10.24");
    r = ctl({"upgrade", "--timeout", "60", "--docker", other.string()});
    EXPECT_EQ(r.code, 4) << r;
    EXPECT_NE(r.err.find("is made with key " + stranger.keyId + ", which is not trusted"), std::string::npos) << r;
    // --signature names another file: the right one, given explicitly, is what counts.
    const fs::path right = signWithMinisign(signer_, other, "version=20.10.24", false, sandbox_->dir() / "other.minisig");
    r = ctl({"upgrade", "--dry-run", "--timeout", "60", "--docker", other.string(), "--signature", "docker=" + right.string()});
    EXPECT_EQ(r.code, 0) << r;
    r = ctl({"upgrade", "--docker", other.string(), "--signature", "docker=" + (sandbox_->dir() / "missing.minisig").string()});
    EXPECT_EQ(r.code, 4) << r;
    EXPECT_NE(r.err.find("its signature " + (sandbox_->dir() / "missing.minisig").string() + " cannot open it"), std::string::npos) << r;
    EXPECT_EQ(installedSha(), before);
}

TEST_F(ArmdockctlTest, FailingEngineIsRolledBackExit3)
{
    const std::string before = installedSha();
    auto r = ctl({"upgrade", "--docker", testEngine("engine_exits").string()});
    EXPECT_EQ(r.code, 3) << r;
    EXPECT_NE(r.err.find("armdockctl: rolled-back: "), std::string::npos) << r;
    EXPECT_NE(r.out.find("] rolling-back"), std::string::npos) << r;
    EXPECT_EQ(installedSha(), before);
    auto status = ctl({"status"});
    EXPECT_NE(status.out.find("Last result:  rolled-back"), std::string::npos) << status;
    EXPECT_NE(status.out.find("Last error:"), std::string::npos) << status;
}

// ---- busy, timeout, interrupt, cancel -----------------------------------

TEST_F(ArmdockctlTest, TimeoutAndBusy)
{
    const std::string before = installedSha();
    // A silent engine keeps the transaction in `checking` for --health-timeout.
    fs::path silent = testEngine("engine_silent");
    auto timedOut = ctl({"upgrade", "--docker", silent.string(), "--health-timeout", "5", "--timeout", "1"});
    EXPECT_EQ(timedOut.code, 9) << timedOut;
    EXPECT_NE(timedOut.err.find("still runs"), std::string::npos) << timedOut;
    const std::string tx = client_->property("Transaction");
    EXPECT_NE(client_->property("State"), "idle");

    // Busy: exit 5 with the agent's words (they name the running transaction).
    auto busy = ctl({"upgrade", "--docker", goodEngine("busy").string()});
    EXPECT_EQ(busy.code, 5) << busy;
    EXPECT_NE(busy.err.find(tx), std::string::npos) << busy;
    EXPECT_EQ(ctl({"rollback"}).code, 5);

    // status while it runs shows the progress.
    auto status = ctl({"status"});
    EXPECT_NE(status.out.find("Progress:"), std::string::npos) << status;
    EXPECT_NE(status.out.find(tx + " (running)"), std::string::npos) << status;

    ASSERT_TRUE(waitIdle());
    EXPECT_EQ(client_->property("LastResult"), "rolled-back");
    EXPECT_EQ(installedSha(), before);

    // Nothing to cancel: the agent's Failed error, exit 1.
    auto nothing = ctl({"cancel"});
    EXPECT_EQ(nothing.code, 1) << nothing;
    EXPECT_NE(nothing.err.find("nothing to cancel"), std::string::npos) << nothing;
}

// Cancel during staging: a large engine file keeps the transaction in
// `staging` (copy and hash) long enough to cancel it there.
TEST_F(ArmdockctlTest, InterruptedWaitExits130AndCancelledWaitExits8)
{
    const std::string before = installedSha();
    fs::path big = goodEngine("big");
    {
        std::ofstream pad(big, std::ios::app | std::ios::binary);
        const std::string chunk(1 << 20, 'x');
        for (int i = 0; i < 384; ++i)
            pad << chunk;
    }
    {
        Child waiting(argv({"upgrade", "--docker", big.string()}), env());
        ASSERT_TRUE(waiting.waitForOutput("] staging", 30s)) << waiting.out() << waiting.err();
        waiting.signal(SIGINT);
        EXPECT_EQ(waiting.wait(), 130) << waiting.err();
        EXPECT_NE(waiting.err().find("goes on"), std::string::npos) << waiting.err();
        EXPECT_NE(client_->property("State"), "idle");
        EXPECT_EQ(ctl({"cancel"}).code, 0);
        ASSERT_TRUE(waitIdle());
        EXPECT_EQ(client_->property("LastResult"), "cancelled");
    }
    {
        Child waiting(argv({"upgrade", "--docker", big.string()}), env());
        ASSERT_TRUE(waiting.waitForOutput("] staging", 30s)) << waiting.out() << waiting.err();
        auto cancel = ctl({"cancel"});
        EXPECT_EQ(cancel.code, 0) << cancel;
        EXPECT_NE(cancel.out.find("cancel requested for transaction " + client_->property("Transaction")), std::string::npos) << cancel;
        EXPECT_EQ(waiting.wait(), 8) << waiting.out() << waiting.err();
        EXPECT_NE(waiting.err().find("armdockctl: cancelled: "), std::string::npos) << waiting.err();
    }
    fs::remove(big);
    EXPECT_EQ(installedSha(), before);
    EXPECT_TRUE(sandbox_->ping());
}

// Cancel during the check: the silent engine would hold `checking` for the
// whole health timeout (20 s here); the cancel ends it at the next ping and
// the old engine is back.
TEST_F(ArmdockctlTest, CancelDuringTheCheckRollsBackAtOnce)
{
    const std::string before = installedSha();
    fs::path silent = testEngine("engine_silent");
    Child waiting(argv({"upgrade", "--docker", silent.string()}), env());
    ASSERT_TRUE(Sandbox::waitFor([&] { return client_->property("State") == "checking"; }, 60s, 20ms)) << waiting.err();
    const auto cancelledAt = std::chrono::steady_clock::now();
    auto cancel = ctl({"cancel"});
    EXPECT_EQ(cancel.code, 0) << cancel;
    EXPECT_EQ(waiting.wait(), 8) << waiting.out() << waiting.err();
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - cancelledAt);
    std::cout << "cancel during the check: rolled back and idle after " << took.count() << " ms\n";
    EXPECT_LT(took, 15s);
    EXPECT_EQ(client_->property("LastResult"), "cancelled");
    EXPECT_NE(client_->property("LastError").find("cancelled by request during the ping check"), std::string::npos)
        << client_->property("LastError");
    EXPECT_EQ(installedSha(), before);
    EXPECT_TRUE(sandbox_->ping());
}

// ---- rollback, reload, watch --------------------------------------------

TEST_F(ArmdockctlTest, RollbackCommandGoesBackToThePreviousEngine)
{
    const std::string before = installedSha();
    auto up = ctl({"upgrade", "--docker", goodEngine("for-rollback").string()});
    ASSERT_EQ(up.code, 0) << up;
    ASSERT_NE(installedSha(), before);
    auto back = ctl({"rollback"});
    ASSERT_EQ(back.code, 0) << back;
    EXPECT_TRUE(lines(back.out).front().starts_with("rollback ")) << back;
    EXPECT_TRUE(lines(back.out).back().starts_with("success: ")) << back;
    EXPECT_EQ(installedSha(), before);

    // --no-wait prints the id alone and returns at once.
    auto noWait = ctl({"upgrade", "--no-wait", "--docker", goodEngine("no-wait").string()});
    ASSERT_EQ(noWait.code, 0) << noWait;
    EXPECT_EQ(noWait.out, client_->property("Transaction") + "\n");
    ASSERT_TRUE(waitIdle());
}

TEST_F(ArmdockctlTest, WatchFollowsAReloadThatTakesADropIn)
{
    Child watch(argv({"watch"}), env());
    ASSERT_TRUE(watch.waitForOutput("watching armdock-agent", 10s)) << watch.out() << watch.err();

    auto nothing = ctl({"reload"});
    EXPECT_EQ(nothing.code, 0) << nothing;
    EXPECT_NE(nothing.out.find("nothing waits in the drop-in folder"), std::string::npos) << nothing;

    fs::path engine = goodEngine("dropin");
    const std::string sha = sha256Of(engine);
    fs::rename(engine, sandbox_->dropinDir() / "docker");
    auto reload = ctl({"reload"});
    ASSERT_EQ(reload.code, 0) << reload;
    EXPECT_NE(reload.out.find("drop-in"), std::string::npos) << reload;
    ASSERT_TRUE(waitIdle());
    EXPECT_EQ(installedSha(), sha);
    const std::string tx = client_->property("Transaction");

    ASSERT_TRUE(watch.waitForOutput("finished " + tx + ": success", 10s)) << watch.out() << watch.err();
    watch.signal(SIGINT);
    EXPECT_EQ(watch.wait(), 0) << watch.err();
    const std::regex progressLine(R"(\[ {0,2}\d{1,3}%\] [a-z-]+(: .+)?)");
    bool sawSwap = false;
    for (const auto& line : lines(watch.out())) {
        if (line.starts_with("[")) {
            EXPECT_TRUE(std::regex_match(line, progressLine)) << line;
        }
        sawSwap = sawSwap || line.find("] swapping") != std::string::npos;
    }
    EXPECT_TRUE(sawSwap) << watch.out();
}

// ---- the progress bar on a pseudo-terminal --------------------------------

TEST_F(ArmdockctlTest, ProgressBarOnATerminal)
{
    fs::path engine = goodEngine("tty");
    const fs::path log = sandbox_->dir() / "tty.log";
    std::string command;
    for (const auto& a : argv({"upgrade", "--docker", engine.string()}))
        command += "'" + a + "' ";
    // util-linux script: a pty for the command, its output copied to the log; -e keeps the exit code.
    Child tty({"/usr/bin/script", "-q", "-e", "-f", "-c", command, log.string()}, env({"TERM=xterm", "COLUMNS=120"}));
    ASSERT_EQ(tty.wait(90s), 0) << tty.out() << tty.err();
    const std::string out = readFile(log);
    EXPECT_EQ(installedSha(), sha256Of(engine));
    // Redrawn in place: carriage return, erase line, the bar.
    EXPECT_NE(out.find("\r\x1b[K["), std::string::npos) << out;
    const std::regex bar(R"(\r\x1b\[K\[(#*)(\.*)\] +(\d+)% ([a-z-]+))");
    int bars = 0;
    bool full = false, partial = false;
    for (auto it = std::sregex_iterator(out.begin(), out.end(), bar); it != std::sregex_iterator(); ++it) {
        ++bars;
        EXPECT_EQ((*it)[1].length() + (*it)[2].length(), 30) << it->str();
        full = full || ((*it)[3] == "100" && (*it)[2].length() == 0);
        partial = partial || ((*it)[1].length() > 0 && (*it)[2].length() > 0);
    }
    EXPECT_GE(bars, 3) << out;
    EXPECT_TRUE(full) << out;
    EXPECT_TRUE(partial) << out;
    EXPECT_NE(out.find("success: "), std::string::npos) << out;
    // No plain progress lines on a terminal.
    EXPECT_EQ(out.find("\n[ "), std::string::npos) << out;
}

// ---- other users, and an agent that is not there ------------------------

TEST_F(ArmdockctlTest, OtherUsersReadButMayNotCall)
{
    // The binary must be reachable for "nobody": copy it into the sandbox.
    const fs::path copy = sandbox_->dir() / "armdockctl";
    fs::copy_file(armdockctlBinary(), copy, fs::copy_options::overwrite_existing);
    fs::permissions(copy, fs::perms(0755));
    auto run = [&](const std::vector<std::string>& args) {
        std::vector<std::string> a{copy.string(), "--bus", sandbox_->busAddress()};
        a.insert(a.end(), args.begin(), args.end());
        Child child(a, env(), Child::Options{"/", 65534});
        Ctl r;
        r.code = child.wait();
        r.out = child.out();
        r.err = child.err();
        return r;
    };
    auto status = run({"status"});
    EXPECT_EQ(status.code, 0) << status;
    EXPECT_NE(status.out.find("State:        idle"), std::string::npos) << status;
    EXPECT_NE(status.out.find("Backups:      unknown"), std::string::npos) << status;
    auto up = run({"upgrade", "--dry-run", "--docker", goodEngine("denied").string()});
    EXPECT_EQ(up.code, 6) << up;
    EXPECT_EQ(up.err.find("org.freedesktop"), std::string::npos) << up;
    EXPECT_EQ(run({"cancel"}).code, 6);
    EXPECT_EQ(run({"reload"}).code, 6);
}

TEST_F(ArmdockctlTest, AnAgentWithoutUpgradeFdsGetsThePaths)
{
    sandbox_->stopUnits({"armdock-agent.service"});
    {
        // A stand-in for an agent older than UpgradeFds: State and Progress
        // for armdockctl's progress view, and an Upgrade that tells what it got.
        auto connection = sdbus::createSessionBusConnectionWithAddress(sandbox_->busAddress());
        auto object = compat::makeObject(*connection, agentObjectPath);
        compat::ObjectVTable vtable(*object);
        vtable.onInterface(agentInterfaceName)
            .method("Upgrade",
                    [](const std::map<std::string, std::string>& files, const std::map<std::string, sdbus::Variant>& options) -> std::string {
                        throw compat::makeError("io.armdock.Agent1.Error.PayloadRejected",
                                                "older agent got docker=" + files.at("docker") + " and " +
                                                    std::to_string(options.size()) + " option(s)");
                    })
            .property("State", [] { return std::string("idle"); })
            .property("Progress", [] { return sdbus::Struct<std::uint32_t, std::string>(0u, std::string()); });
        vtable.finish();
        connection->requestName(compat::ServiceName{agentBusName});
        connection->enterEventLoopAsync();
        const fs::path engine = goodEngine("older-agent");
        const auto r = ctl({"upgrade", "--docker", engine.string()});
        connection->leaveEventLoop();
        EXPECT_EQ(r.code, 4) << r;
        // The path itself, and none of UpgradeFds's source.* options.
        EXPECT_NE(r.err.find("older agent got docker=" + engine.string() + " and 0 option(s)"), std::string::npos) << r;
    }
    sandbox_->startUnits({"armdock-agent.service"});
    ASSERT_TRUE(AgentClient::waitForAgent(sandbox_->busAddress()));
}

TEST_F(ArmdockctlTest, AgentNotRunningSaysHowToStartIt)
{
    sandbox_->stopUnits({"armdock-agent.service"});
    for (const auto& command : std::vector<std::vector<std::string>>{{"status"}, {"upgrade", "--docker", "/x"}, {"backups"}, {"watch"}}) {
        auto r = ctl(command);
        EXPECT_EQ(r.code, 7) << r;
        EXPECT_NE(r.err.find("armdock-agent is not running"), std::string::npos) << r;
        EXPECT_NE(r.err.find("systemctl start armdock-agent"), std::string::npos) << r;
    }
    sandbox_->startUnits({"armdock-agent.service"});
    ASSERT_TRUE(AgentClient::waitForAgent(sandbox_->busAddress()));
    EXPECT_EQ(ctl({"status"}).code, 0);
}

}  // namespace
}  // namespace armdock::test
