// The [hooks] programs: runHook with real scripts (what a hook is given, how
// its failure is described), and the transaction around them with systemd
// and Docker faked: before_stop refuses with nothing changed, one after hook
// runs once the engine was stopped, an after hook's failure is shown and the
// result stands.
#include <thread>

#include "agent_test_fixture.hpp"
#include "core/hooks.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

fs::path writeScript(const fs::path& file, const std::string& body)
{
    fs::create_directories(file.parent_path());
    std::ofstream(file) << "#!/bin/sh\n" << body;
    fs::permissions(file, fs::perms(0755));
    return file;
}

// The process is gone (or a zombie waiting for init): read from /proc, no signal sent.
bool processGone(pid_t pid, std::chrono::milliseconds within)
{
    const auto deadline = std::chrono::steady_clock::now() + within;
    for (;;) {
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string text((std::istreambuf_iterator<char>(stat)), {});
        const auto close = text.rfind(')');
        if (!stat || close == std::string::npos || text.substr(close + 2, 1) == "Z")
            return true;
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(20ms);
    }
}

std::string readAll(const fs::path& file)
{
    std::ifstream in(file);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

class HookRunTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/armdock-hooks.XXXXXX";
        dir = ::mkdtemp(tmpl);
    }
    void TearDown() override { fs::remove_all(dir); }
    fs::path dir;
    const HookContext context{"tx-1", "1.0.0", "2.0.0", "rolled-back", "the check failed"};
};

TEST_F(HookRunTest, AHookGetsTheTransactionAndVersionsAndNothingElse)
{
    const fs::path out = dir / "env.txt";
    const auto hook = writeScript(dir / "hook", "env | grep -v -E '^(PWD|OLDPWD|SHLVL|_)=' | sort > " + out.string() + "\n");
    EXPECT_EQ(runHook(HookPoint::AfterRollback, {hook.string()}, 5s, context), "");
    EXPECT_EQ(readAll(out), "ARMDOCK_HOOK=after_rollback\nARMDOCK_MESSAGE=the check failed\nARMDOCK_NEW_VERSION=2.0.0\nARMDOCK_OLD_VERSION=1.0.0\n"
                            "ARMDOCK_RESULT=rolled-back\nARMDOCK_TRANSACTION=tx-1\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n");
}

TEST_F(HookRunTest, BeforeStopIsNotToldAResult)
{
    const auto hook = writeScript(dir / "hook", "env | grep -c '^ARMDOCK_RESULT=' && exit 7\nexit 0\n");
    EXPECT_EQ(runHook(HookPoint::BeforeStop, {hook.string()}, 5s, context), "");
}

TEST_F(HookRunTest, AFailureNamesTheHookTheCommandTheStatusAndWhatItSaid)
{
    const auto hook = writeScript(dir / "drain", "echo starting\necho \"node is pinned: $1\" >&2\nexit 3\n");
    const std::string message = runHook(HookPoint::BeforeStop, {hook.string(), "web-7"}, 5s, context);
    EXPECT_EQ(message, "hook before_stop `" + hook.string() + " web-7` exited with status 3 (it said: node is pinned: web-7); run it by hand, "
                       "with the ARMDOCK_ variables armdock-agent.toml(5) lists under [hooks], to see why");
}

TEST_F(HookRunTest, AHookThatHangsIsKilledWithWhatItStarted)
{
    const fs::path pidFile = dir / "child.pid";
    const auto hook = writeScript(dir / "hang", "sleep 60 &\necho $! > " + pidFile.string() + "\nwait\n");
    const auto start = std::chrono::steady_clock::now();
    const std::string message = runHook(HookPoint::AfterSuccess, {hook.string()}, 1s, context);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_NE(message.find("hook after_success `" + hook.string() + "` did not finish within 1 s and was killed"), std::string::npos) << message;
    EXPECT_NE(message.find("raise hooks.timeout_sec"), std::string::npos) << message;
    // The sleep of the hook's group went with it (the PID is the hook's child, read from its file).
    const pid_t child = std::stoi(readAll(pidFile));
    ASSERT_GT(child, 0);
    EXPECT_TRUE(processGone(child, 2s)) << "the hook's child " << child << " outlived its kill";
}

TEST_F(HookRunTest, AProgramThatIsNotThereIsNamed)
{
    const std::string message = runHook(HookPoint::AfterSuccess, {(dir / "missing").string()}, 5s, context);
    EXPECT_NE(message.find("hook after_success `" + (dir / "missing").string() + "` could not start"), std::string::npos) << message;
    EXPECT_NE(message.find("fix hooks.after_success in the config"), std::string::npos) << message;
}

// The transaction with hooks that append a line to a log: which ran, in what order, with what.
class TransactionHooksTest : public AgentFixture {
protected:
    std::string extraTables() const override
    {
        std::string toml = "[hooks]\ntimeout_sec = 5\n";
        if (!beforeStop.empty())
            toml += "before_stop = [\"" + beforeStop.string() + "\"]\n";
        toml += "after_success = [\"" + afterSuccess.string() + "\"]\nafter_rollback = [\"" + afterRollback.string() + "\"]\n";
        return toml;
    }

    void SetUp() override
    {
        hooksDir = fs::path(::testing::TempDir()) / ("armdock-hooks-" + std::to_string(::getpid()));
        fs::remove_all(hooksDir);
        const std::string line = "echo \"$ARMDOCK_HOOK $ARMDOCK_TRANSACTION $ARMDOCK_OLD_VERSION $ARMDOCK_NEW_VERSION $ARMDOCK_RESULT\" >> " +
                                 (hooksDir / "log").string() + "\n";
        beforeStop = writeScript(hooksDir / "before", line + "exit ${BEFORE_STATUS:-0}\n");
        afterSuccess = writeScript(hooksDir / "success", line);
        afterRollback = writeScript(hooksDir / "rollback", line);
        AgentFixture::SetUp();
    }
    void TearDown() override
    {
        AgentFixture::TearDown();
        fs::remove_all(hooksDir);
    }

    std::vector<std::string> log() const
    {
        std::vector<std::string> lines;
        std::ifstream in(hooksDir / "log");
        for (std::string l; std::getline(in, l);)
            lines.push_back(l);
        return lines;
    }

    fs::path hooksDir, beforeStop, afterSuccess, afterRollback;
};

TEST_F(TransactionHooksTest, BeforeStopRunsBeforeTheStopAndAfterSuccessAfterTheCommit)
{
    startAgent();
    std::vector<std::string> seenAtStop;
    units.onCall = [&](const std::string& call) {
        if (call == "stop docker.socket")
            seenAtStop = log();
    };
    const fs::path src = newEngine("engine-v2", "2.0.0");
    const std::string tx = agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(seenAtStop, (std::vector<std::string>{"before_stop " + tx + " 1.0.0 2.0.0 "}));
    EXPECT_EQ(log(), (std::vector<std::string>{"before_stop " + tx + " 1.0.0 2.0.0 ", "after_success " + tx + " 1.0.0 2.0.0 success"}));
}

TEST_F(TransactionHooksTest, AFailingBeforeStopRefusesTheUpgradeWithNothingChanged)
{
    beforeStop = writeScript(hooksDir / "before-fails", "echo 'drain: 3 tasks still running' >&2\nexit 2\n");
    config = makeConfig();
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Rejected);
    const std::string error = agent->status().lastError;
    EXPECT_NE(error.find("hook before_stop `" + beforeStop.string() + "` exited with status 2 (it said: drain: 3 tasks still running)"),
              std::string::npos) << error;
    EXPECT_NE(error.find("nothing was changed and Docker was not interrupted"), std::string::npos) << error;
    EXPECT_TRUE(units.calls.empty());
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_TRUE(agent->listBackups().empty());
    expectNoLeftovers();
    EXPECT_TRUE(log().empty()) << "an after hook ran for an upgrade that never stopped the engine";
}

TEST_F(TransactionHooksTest, AfterRollbackRunsWhenTheNewEngineFailsItsCheck)
{
    startAgent();
    const fs::path src = newEngine("engine-broken", "2.0.0", /*broken=*/true);
    const std::string tx = agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::RolledBack) << agent->status().lastError;
    EXPECT_EQ(log(), (std::vector<std::string>{"before_stop " + tx + " 1.0.0 2.0.0 ", "after_rollback " + tx + " 1.0.0 2.0.0 rolled-back"}));
}

TEST_F(TransactionHooksTest, AFailingAfterHookIsShownAndTheUpgradeStands)
{
    afterSuccess = writeScript(hooksDir / "success-fails", "echo 'load balancer unreachable'\nexit 4\n");
    config = makeConfig();
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success);
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
    ASSERT_EQ(recorder.finishedCalls.size(), 1u);
    const std::string message = std::get<2>(recorder.finishedCalls[0]);
    EXPECT_NE(message.find("hook after_success `" + afterSuccess.string() + "` exited with status 4 (it said: load balancer unreachable)"),
              std::string::npos) << message;
    EXPECT_NE(message.find("(the transaction's result stands)"), std::string::npos) << message;
}

TEST_F(TransactionHooksTest, ADryRunRunsNoHook)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{{"dry_run", true}});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success);
    EXPECT_TRUE(log().empty());
}

}  // namespace
}  // namespace armdock::test
