// Bad input over D-Bus, against the real agent, systemd and dockerd: each case
// is a named D-Bus error whose message names the file or key, and nothing
// changes — no payload file (by hash), no Docker restart (same MainPID), no
// leftover in the state folder or beside the payloads. One sandbox and one
// agent serve every case (they change nothing, which is the point); each case
// gets a fresh sub-folder for its files. UpgradeFds's descriptors get the
// same checks as Upgrade's paths.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <set>

#include "agent_sandbox_fixture.hpp"
#include "minisign_tool.hpp"

namespace armdock::test {
namespace {

constexpr const char* errorPrefix = "io.armdock.Agent1.Error.";

// Everything that must not change: payload hashes, Docker's PID, the files
// under the state folder and beside the payloads.
struct HostSnapshot {
    std::string dockerSha, dockerinitSha;
    pid_t dockerPid = 0;
    std::set<std::string> stateFiles;
    std::set<std::string> payloadFolderFiles;
    bool operator==(const HostSnapshot&) const = default;
};

std::string joinSet(const std::set<std::string>& s)
{
    std::string out;
    for (const auto& e : s)
        out += (out.empty() ? "" : ", ") + e;
    return out.empty() ? "(none)" : out;
}

class BadInputTest : public ::testing::Test {
protected:
    // One sandbox and agent for every case of both suites; the global
    // environment below stops them after the last test.
    static void SetUpTestSuite()
    {
        if (sandbox || !setupError.empty())
            return;
        try {
            sandbox = std::make_unique<Sandbox>();
            // A trusted key for the signature cases (its secret half kept out of the keys folder).
            signer = makeMinisignKey(sandbox->dir() / "trusted.d", "release");
            fs::create_directories(sandbox->dir() / "signing");
            fs::rename(signer.secretKey, sandbox->dir() / "signing" / "release.key");
            signer.secretKey = sandbox->dir() / "signing" / "release.key";
            configFile = sandbox->writeAgentConfig("[trust]\nkeys = \"" + (sandbox->dir() / "trusted.d").string() + "\"\n",
                                                   {{"docker.grace_sec", "1"}});
            sandbox->agentUnit(agentBinary(), configFile);
            sandbox->startUnits({"armdock-agent.service"});
            if (!AgentClient::waitForAgent(sandbox->busAddress()))
                throw std::runtime_error("the agent did not take its bus name");
            client = std::make_unique<AgentClient>(sandbox->busAddress());
        } catch (const std::exception& e) {
            setupError = e.what();
        }
    }

public:
    static void stopAll()
    {
        if (anyFailed && sandbox && fs::exists(sandbox->agentLog()))
            std::cerr << "---- agent log ----\n" << readFile(sandbox->agentLog()) << "\n-------------------\n";
        client.reset();
        sandbox.reset();
    }

protected:
    void SetUp() override
    {
        ASSERT_TRUE(sandbox && client) << "sandbox start failed: " << setupError;
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = std::string(info->test_suite_name()) + "-" + info->name();
        for (char& ch : name)
            if (ch == '/')
                ch = '-';
        caseDir = sandbox->dir() / "cases" / name;
        fs::create_directories(caseDir);
        ASSERT_EQ(client->property("State"), "idle");
        before = snapshot();
    }

    void TearDown() override
    {
        if (!sandbox || !client)
            return;
        // Every case: nothing changed.
        const HostSnapshot after = snapshot();
        EXPECT_EQ(after.dockerSha, before.dockerSha) << "the docker payload changed";
        EXPECT_EQ(after.dockerinitSha, before.dockerinitSha) << "the dockerinit payload changed";
        EXPECT_EQ(after.dockerPid, before.dockerPid) << "Docker was restarted";
        EXPECT_GT(after.dockerPid, 0);
        EXPECT_EQ(after.stateFiles, before.stateFiles)
            << "state folder before: " << joinSet(before.stateFiles) << "; after: " << joinSet(after.stateFiles);
        EXPECT_EQ(after.payloadFolderFiles, before.payloadFolderFiles)
            << "payload folders before: " << joinSet(before.payloadFolderFiles) << "; after: " << joinSet(after.payloadFolderFiles);
        EXPECT_FALSE(fs::exists(sandbox->stateDir() / "transaction.journal"));
        EXPECT_TRUE(sandbox->ping());
        EXPECT_EQ(client->property("State"), "idle");
        if (HasFailure())
            anyFailed = true;
    }

    static HostSnapshot snapshot()
    {
        HostSnapshot s;
        s.dockerSha = sha256Of(sandbox->payloadPath("docker"));
        s.dockerinitSha = sha256Of(sandbox->payloadPath("dockerinit"));
        s.dockerPid = sandbox->dockerMainPid();
        // last-result.json is the record of the last result (rewritten by the
        // asynchronous refusals on purpose), not a leftover.
        for (const auto& e : fs::recursive_directory_iterator(sandbox->stateDir()))
            if (e.path().filename() != "last-result.json")
                s.stateFiles.insert(fs::relative(e.path(), sandbox->stateDir()).string());
        for (const char* name : {"docker", "dockerinit"})
            for (const auto& e : fs::directory_iterator(sandbox->payloadPath(name).parent_path()))
                s.payloadFolderFiles.insert(e.path().string());
        return s;
    }

    // A valid source: a root-owned 0755 copy of the sandbox's small dockerinit ELF.
    fs::path goodFile(const std::string& name = "good") const
    {
        const fs::path file = caseDir / name;
        installExecutable(sandbox->payloadPath("dockerinit"), file);
        return file;
    }

    // Runs `call`, which must fail with io.armdock.Agent1.Error.<name>; the
    // message must contain every one of `words`. Returns the message.
    std::string expectError(const std::function<void()>& call, const std::string& name, const std::vector<std::string>& words)
    {
        try {
            call();
        } catch (const sdbus::Error& e) {
            EXPECT_EQ(e.getName(), errorPrefix + name) << e.getMessage();
            for (const auto& w : words)
                EXPECT_NE(e.getMessage().find(w), std::string::npos) << "the message does not name \"" << w << "\": " << e.getMessage();
            std::cout << "  " << e.getName() << ": " << e.getMessage() << "\n";
            return e.getMessage();
        }
        ADD_FAILURE() << "no error; expected " << errorPrefix << name;
        return "";
    }

    std::string expectUpgradeError(const std::map<std::string, std::string>& files, const std::map<std::string, sdbus::Variant>& options,
                                   const std::string& name, const std::vector<std::string>& words)
    {
        return expectError([&] { client->upgrade(files, options); }, name, words);
    }

    static inline std::unique_ptr<Sandbox> sandbox;
    static inline std::unique_ptr<AgentClient> client;
    static inline fs::path configFile;
    static inline MinisignKeyPair signer;
    static inline std::string setupError;
    static inline bool anyFailed = false;
    fs::path caseDir;
    HostSnapshot before;
};

class StopSharedSandbox : public ::testing::Environment {
public:
    void TearDown() override { BadInputTest::stopAll(); }
};
[[maybe_unused]] ::testing::Environment* const stopSharedSandbox = ::testing::AddGlobalTestEnvironment(new StopSharedSandbox);

// ---- Sources the verifier must refuse: one file (or path) per case.

struct BadSourceCase {
    const char* name;
    // Makes the bad source in the case's fresh folder and returns the path to pass.
    std::function<fs::path(const fs::path& dir, const fs::path& goodElf)> make;
    const char* error;  // D-Bus error after the prefix
    const char* words;  // what the message must say besides the path
};

std::ostream& operator<<(std::ostream& out, const BadSourceCase& c) { return out << c.name; }

fs::path copyOf(const fs::path& from, const fs::path& to, mode_t mode)
{
    installExecutable(from, to);
    if (::chmod(to.c_str(), mode) != 0)
        throw std::runtime_error("chmod " + to.string());
    return to;
}

// The first bytes of a real engine: its header promises tables beyond the end.
fs::path truncatedElf(const fs::path& dir, const fs::path&)
{
    std::string head(4096, '\0');
    std::ifstream("/usr/sbin/dockerd", std::ios::binary).read(head.data(), static_cast<std::streamsize>(head.size()));
    const fs::path file = dir / "docker";
    writeFile(file, head, 0755);
    ::chmod(file.c_str(), 0755);
    return file;
}

// A 64-bit little-endian ELF header for EM_AARCH64 (183), padded to 4 KiB.
fs::path elfForAnotherMachine(const fs::path& dir, const fs::path&)
{
    std::string bytes(4096, '\0');
    const unsigned char ident[] = {0x7f, 'E', 'L', 'F', 2 /*64-bit*/, 1 /*LE*/, 1 /*version*/};
    for (std::size_t i = 0; i < sizeof ident; ++i)
        bytes[i] = static_cast<char>(ident[i]);
    bytes[16] = 2;  // e_type ET_EXEC
    bytes[18] = static_cast<char>(183);  // e_machine EM_AARCH64
    bytes[20] = 1;  // e_version
    bytes[32] = 64;  // e_phoff
    bytes[52] = 64;  // e_ehsize
    bytes[54] = 56;  // e_phentsize
    bytes[56] = 1;  // e_phnum
    const fs::path file = dir / "docker";
    writeFile(file, bytes, 0755);
    ::chmod(file.c_str(), 0755);
    return file;
}

class BadSourceTest : public BadInputTest, public ::testing::WithParamInterface<BadSourceCase> {};

TEST_P(BadSourceTest, IsRefusedAndNothingChanges)
{
    const auto& c = GetParam();
    const fs::path good = goodFile();
    const fs::path source = c.make(caseDir, good);
    expectUpgradeError({{"docker", source.string()}}, {}, c.error, {source.string(), "docker", c.words});
}

const BadSourceCase badSources[] = {
    {"PathDoesNotExist", [](const fs::path& d, const fs::path&) { return d / "no-such-file"; }, "PayloadRejected", "does not exist"},
    {"FolderDoesNotExist", [](const fs::path& d, const fs::path&) { return d / "no-such-folder" / "docker"; }, "PayloadRejected",
     "does not exist"},
    {"Directory",
     [](const fs::path& d, const fs::path&) {
         fs::create_directory(d / "a-folder");
         return d / "a-folder";
     },
     "PayloadRejected", "folder"},
    {"Symlink",
     [](const fs::path& d, const fs::path& good) {
         fs::create_symlink(good, d / "link");
         return d / "link";
     },
     "PayloadRejected", "symlink"},
    {"SymlinkInParentFolder",
     [](const fs::path& d, const fs::path& good) {
         fs::create_directory(d / "real");
         installExecutable(good, d / "real" / "docker");
         fs::create_directory_symlink(d / "real", d / "linked");
         return d / "linked" / "docker";
     },
     "PayloadRejected", "symlink"},
    {"Fifo",
     [](const fs::path& d, const fs::path&) {
         if (::mkfifo((d / "fifo").c_str(), 0644) != 0)
             throw std::runtime_error("mkfifo");
         return d / "fifo";
     },
     "PayloadRejected", "FIFO"},
    {"NotOwnedByRoot",
     [](const fs::path& d, const fs::path& good) {
         auto f = copyOf(good, d / "docker", 0755);
         if (::chown(f.c_str(), 65534, 65534) != 0)
             throw std::runtime_error("chown");
         return f;
     },
     "PayloadRejected", "owned by uid 65534"},
    {"GroupWritable", [](const fs::path& d, const fs::path& good) { return copyOf(good, d / "docker", 0775); }, "PayloadRejected",
     "group-writable"},
    {"WorldWritable", [](const fs::path& d, const fs::path& good) { return copyOf(good, d / "docker", 0757); }, "PayloadRejected",
     "world-writable"},
    {"EmptyFile",
     [](const fs::path& d, const fs::path&) {
         writeFile(d / "docker", "", 0755);
         ::chmod((d / "docker").c_str(), 0755);
         return d / "docker";
     },
     "PayloadRejected", "empty"},
    {"ShellScript",
     [](const fs::path& d, const fs::path&) {
         writeFile(d / "docker", "#!/bin/sh\nexec /usr/sbin/dockerd \"$@\"\n", 0755);
         ::chmod((d / "docker").c_str(), 0755);
         return d / "docker";
     },
     "PayloadRejected", "not an ELF file"},
    {"TruncatedElf", truncatedElf, "PayloadRejected", "truncated ELF"},
    {"ElfForAnotherMachine", elfForAnotherMachine, "PayloadRejected", "aarch64"},
};

INSTANTIATE_TEST_SUITE_P(EachBadSource, BadSourceTest, ::testing::ValuesIn(badSources),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- UpgradeFds: a descriptor the caller opened gets the same checks.

struct BadDescriptorCase {
    const char* name;
    // Makes the bad source in the case's fresh folder and opens it as a client would.
    std::function<int(const fs::path& dir, const fs::path& goodElf)> open;
    const char* error;  // D-Bus error after the prefix
    const char* words;  // what the message must say besides the file's label
};

std::ostream& operator<<(std::ostream& out, const BadDescriptorCase& c) { return out << c.name; }

int openReadOnly(const fs::path& file) { return ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY); }

class BadDescriptorTest : public BadInputTest, public ::testing::WithParamInterface<BadDescriptorCase> {};

TEST_P(BadDescriptorTest, IsRefusedAndNothingChanges)
{
    const auto& c = GetParam();
    const int fd = c.open(caseDir, goodFile());
    ASSERT_GE(fd, 0) << std::strerror(errno);
    // The messages name the path the caller gives in source.docker, else fd:docker.
    const std::string label = (caseDir / "as-the-caller-calls-it").string();
    expectError([&] { client->upgradeFds({{"docker", fd}}, {{"source.docker", sdbus::Variant(label)}}); }, c.error,
                {"payload docker: " + label, c.words});
    expectError([&] { client->upgradeFds({{"docker", fd}}); }, c.error, {"payload docker: fd:docker", c.words});
    ::close(fd);
}

const BadDescriptorCase badDescriptors[] = {
    {"GroupWritable", [](const fs::path& d, const fs::path& good) { return openReadOnly(copyOf(good, d / "docker", 0775)); },
     "PayloadRejected", "group-writable"},
    {"NotElf",
     [](const fs::path& d, const fs::path&) {
         writeFile(d / "docker", "#!/bin/sh\nexec /usr/sbin/dockerd \"$@\"\n", 0755);
         ::chmod((d / "docker").c_str(), 0755);
         return openReadOnly(d / "docker");
     },
     "PayloadRejected", "not an ELF file"},
    {"Fifo",
     [](const fs::path& d, const fs::path&) {
         if (::mkfifo((d / "fifo").c_str(), 0644) != 0)
             throw std::runtime_error("mkfifo");
         return openReadOnly(d / "fifo");  // O_NONBLOCK: no writer needed
     },
     "PayloadRejected", "FIFO"},
    {"OpenedForWriting",
     [](const fs::path& d, const fs::path& good) { return ::open(copyOf(good, d / "docker", 0755).c_str(), O_RDWR | O_CLOEXEC); },
     "PayloadRejected", "reading and writing"},
};

INSTANTIATE_TEST_SUITE_P(EachBadDescriptor, BadDescriptorTest, ::testing::ValuesIn(badDescriptors),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(BadInputTest, SourceLabelBelongsToUpgradeFds)
{
    const std::string file = goodFile().string();
    expectUpgradeError({{"dockerinit", file}}, {{"source.dockerinit", sdbus::Variant(file)}}, "InvalidArgument",
                       {"source.dockerinit", "UpgradeFds"});
}

// ---- Requests the agent must refuse before looking at any file.

TEST_F(BadInputTest, RelativePath)
{
    expectUpgradeError({{"docker", "usr/bin/docker"}}, {}, "InvalidArgument", {"usr/bin/docker", "docker", "not absolute"});
}

TEST_F(BadInputTest, UnknownPayloadName)
{
    expectUpgradeError({{"containerd", goodFile().string()}}, {}, "InvalidArgument", {"containerd", "unknown payload"});
}

TEST_F(BadInputTest, EmptyFilesMap)
{
    // Names what it expects: the configured payloads.
    expectUpgradeError({}, {}, "InvalidArgument", {"no files", "docker", "dockerinit"});
}

TEST_F(BadInputTest, UnknownOption)
{
    expectUpgradeError({{"dockerinit", goodFile().string()}}, {{"force", sdbus::Variant(true)}}, "InvalidArgument",
                       {"force", "unknown option"});
}

TEST_F(BadInputTest, OptionOfWrongType)
{
    const std::string file = goodFile().string();
    expectUpgradeError({{"dockerinit", file}}, {{"dry_run", sdbus::Variant(std::string("yes"))}}, "InvalidArgument", {"dry_run", "boolean"});
    expectUpgradeError({{"dockerinit", file}}, {{"dry_run", sdbus::Variant(std::int32_t(1))}}, "InvalidArgument", {"dry_run", "boolean"});
    expectUpgradeError({{"dockerinit", file}}, {{"health_timeout_sec", sdbus::Variant(std::string("30"))}}, "InvalidArgument",
                       {"health_timeout_sec", "unsigned"});
    expectUpgradeError({{"dockerinit", file}}, {{"sha256.dockerinit", sdbus::Variant(std::uint32_t(7))}}, "InvalidArgument",
                       {"sha256.dockerinit", "string"});
}

// ---- A digest that does not match is found while copying: reported asynchronously.

TEST_F(BadInputTest, Sha256Mismatch)
{
    const fs::path file = goodFile("dockerinit");
    const std::string wrong(64, '0');
    const std::string tx = client->upgrade({{"dockerinit", file.string()}}, {{"sha256.dockerinit", sdbus::Variant(wrong)}});
    ASSERT_FALSE(tx.empty());
    EXPECT_EQ(client->waitFinished(tx, std::chrono::seconds(60)), "rejected");
    const std::string error = client->property("LastError");
    EXPECT_NE(error.find(file.string()), std::string::npos) << "LastError does not name the file: " << error;
    EXPECT_NE(error.find(wrong), std::string::npos) << error;
    EXPECT_NE(error.find(sha256Of(file)), std::string::npos) << "LastError does not give the real digest: " << error;
    std::cout << "  LastResult rejected: " << error << "\n";
}

// ---- Signatures ([trust] keys holds one key): refused before anything is
// copied when the key or the text is wrong, while staging when the bytes are.

TEST_F(BadInputTest, SignatureByAnUntrustedKey)
{
    const fs::path file = goodFile("dockerinit");
    const MinisignKeyPair stranger = makeMinisignKey(caseDir / "keys", "stranger");
    const fs::path sig = signWithMinisign(stranger, file, "version=1");
    expectUpgradeError({{"dockerinit", file.string()}}, {{"signature.dockerinit", sdbus::Variant(readText(sig))}}, "PayloadRejected",
                       {"payload dockerinit", "is made with key " + stranger.keyId, "which is not trusted", signer.keyId});
}

TEST_F(BadInputTest, SignatureTruncated)
{
    const fs::path file = goodFile("dockerinit");
    const std::string text = readText(signWithMinisign(signer, file, "version=1"));
    expectUpgradeError({{"dockerinit", file.string()}}, {{"signature.dockerinit", sdbus::Variant(text.substr(0, text.size() - 40))}},
                       "PayloadRejected", {"payload dockerinit", "option signature.dockerinit", "is not a minisign signature"});
}

TEST_F(BadInputTest, SignatureOfAnotherFileOrATamperedFile)
{
    const fs::path file = goodFile("dockerinit");
    const fs::path other = goodFile("other");
    std::ofstream(other, std::ios::app | std::ios::binary) << "another build";
    for (const fs::path& signedFile : {other, file}) {
        const std::string sig = readText(signWithMinisign(signer, signedFile, ""));
        if (signedFile == file)
            std::ofstream(file, std::ios::app | std::ios::binary) << "tampered";
        const std::string tx = client->upgrade({{"dockerinit", file.string()}}, {{"signature.dockerinit", sdbus::Variant(sig)}});
        ASSERT_FALSE(tx.empty());
        EXPECT_EQ(client->waitFinished(tx, std::chrono::seconds(60)), "rejected");
        const std::string error = client->property("LastError");
        EXPECT_NE(error.find("its signature by key " + signer.keyId), std::string::npos) << error;
        EXPECT_NE(error.find("is not for this file"), std::string::npos) << error;
        EXPECT_NE(error.find("file:" + signedFile.filename().string()), std::string::npos) << error;
        std::cout << "  LastResult rejected: " << error << "\n";
    }
}

// ---- Methods called at the wrong time.

TEST_F(BadInputTest, RollbackWithNoBackup)
{
    ASSERT_TRUE(client->listBackups().empty());
    expectError([&] { client->rollback(); }, "NoBackup", {(sandbox->stateDir() / "backups").string()});
}

TEST_F(BadInputTest, SecondUpgradeWhileOneRuns)
{
    // A dry run of a whole engine (a copy of the sandbox's dockerd) verifies
    // and stages tens of MB and runs `-v`: it is running when the second call
    // comes, and it changes nothing either.
    const fs::path engine = caseDir / "docker";
    installExecutable(sandbox->payloadPath("docker"), engine);
    const std::string tx = client->upgrade({{"docker", engine.string()}}, {{"dry_run", sdbus::Variant(true)}});
    expectUpgradeError({{"dockerinit", goodFile().string()}}, {}, "Busy", {tx});
    expectError([&] { client->rollback(); }, "Busy", {tx});
    EXPECT_EQ(client->waitFinished(tx, std::chrono::seconds(120)), "success") << client->property("LastError");
}

TEST_F(BadInputTest, CancelWithNothingRunning)
{
    expectError([&] { client->cancel(); }, "Failed", {"nothing to cancel"});
}

}  // namespace
}  // namespace armdock::test
