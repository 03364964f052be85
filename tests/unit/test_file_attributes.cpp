// What a file is, is kept: owner, mode, security.capability and
// security.selinux read and applied by descriptor (file_attributes.hpp), the
// refusals that name the attribute, and an upgrade and a rollback through
// the agent (systemd and Docker faked) that keep them. Needs root (chown,
// setting security.* attributes), as the other unit tests that make root-owned files.
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <thread>

#include "agent_test_fixture.hpp"

#include "core/errors.hpp"
#include "core/file_attributes.hpp"
#include "core/staging.hpp"

namespace armdock::test {
namespace {


// security.capability as `setcap cap_net_bind_service+ep` writes it (revision 2, little-endian).
std::string capabilityValue(unsigned cap, bool effective)
{
    std::string raw(XATTR_CAPS_SZ_2, '\0');
    const std::uint32_t magic = VFS_CAP_REVISION_2 | (effective ? VFS_CAP_FLAGS_EFFECTIVE : 0);
    for (int i = 0; i < 4; ++i)
        raw[i] = static_cast<char>((magic >> (8 * i)) & 0xff);
    const std::uint32_t permitted = 1u << cap;  // caps below 32 sit in the first word
    for (int i = 0; i < 4; ++i)
        raw[4 + i] = static_cast<char>((permitted >> (8 * i)) & 0xff);
    return raw;
}

std::string slurpFile(const fs::path& file)
{
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

const std::string selinuxLabel = std::string("system_u:object_r:bin_t:s0") + '\0';

void setAttribute(const fs::path& file, const char* name, const std::string& value)
{
    ASSERT_EQ(::setxattr(file.c_str(), name, value.data(), value.size(), 0), 0) << name << " on " << file << ": " << std::strerror(errno);
}

// Runs `body` on a thread of its own that first drops `cap` from its
// effective set (capabilities are per thread), or from its bounding set.
void withoutCapability(unsigned cap, bool fromBoundingSet, const std::function<void()>& body)
{
    std::thread([&] {
        if (fromBoundingSet) {
            ASSERT_EQ(::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), 0) << std::strerror(errno);
        } else {
            __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
            __user_cap_data_struct data[2]{};
            ASSERT_EQ(::syscall(SYS_capget, &header, data), 0);
            data[cap / 32].effective &= ~(1u << (cap % 32));
            ASSERT_EQ(::syscall(SYS_capset, &header, data), 0) << std::strerror(errno);
        }
        body();
    }).join();
}

class FileAttributesTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (::geteuid() != 0)
            GTEST_SKIP() << "needs root: chown and security.* attributes";
        char pattern[] = "/tmp/armdock-attributes-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir = pattern;
    }
    void TearDown() override
    {
        if (!dir.empty())
            fs::remove_all(dir);
    }

    // An executable owned by root:5 (some group), 04750, with cap_net_bind_service+ep.
    fs::path decoratedFile(const std::string& name)
    {
        const fs::path file = dir / name;
        makeEngineFile(file, name);
        EXPECT_EQ(::chown(file.c_str(), 0, 5), 0);
        EXPECT_EQ(::chmod(file.c_str(), 04750), 0);
        setAttribute(file, capabilityAttribute, capabilityValue(CAP_NET_BIND_SERVICE, true));
        return file;
    }

    fs::path dir;
};

TEST_F(FileAttributesTest, ReadsOwnerModeAndBothExtendedAttributes)
{
    const fs::path file = decoratedFile("engine");
    setAttribute(file, selinuxAttribute, selinuxLabel);
    const FileAttributes a = readFileAttributes(file);
    EXPECT_EQ(a.uid, 0u);
    EXPECT_EQ(a.gid, 5u);
    EXPECT_EQ(a.mode, 04750u);
    ASSERT_TRUE(a.capability);
    EXPECT_EQ(*a.capability, capabilityValue(CAP_NET_BIND_SERVICE, true));
    ASSERT_TRUE(a.selinux);
    EXPECT_EQ(*a.selinux, selinuxLabel);
    EXPECT_EQ(describeAttributes(a),
              "owner 0:5, mode 04750, security.capability cap_net_bind_service=ep, security.selinux system_u:object_r:bin_t:s0");

    const fs::path plain = dir / "plain";
    makeEngineFile(plain, "plain");
    const FileAttributes p = readFileAttributes(plain);
    EXPECT_FALSE(p.capability);
    EXPECT_EQ(p.mode, 0755u);
}

// chown(2) clears setuid and capabilities, and so does a write: the copy
// applies them after the last byte, owner first.
TEST_F(FileAttributesTest, ACopyCarriesSetuidAndCapabilityThroughTheChown)
{
    const fs::path from = decoratedFile("engine");
    setAttribute(from, selinuxAttribute, selinuxLabel);
    const FileAttributes wanted = readFileAttributes(from);
    const std::string sha = copyFileWithAttributes(from, dir / "copy", wanted);
    EXPECT_EQ(sha, sha256OfFile(from));
    EXPECT_EQ(readFileAttributes(dir / "copy"), wanted);

    // Another owner and no capability: the copy's capability goes too.
    FileAttributes other = wanted;
    other.gid = 0;
    other.mode = 0755;
    other.capability.reset();
    UniqueFd fd(::open((dir / "copy").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    applyFileAttributes(fd.get(), dir / "copy", other);
    const FileAttributes now = readFileAttributes(dir / "copy");
    EXPECT_EQ(now.gid, 0u);
    EXPECT_EQ(now.mode, 0755u);
    EXPECT_FALSE(now.capability);
}

TEST_F(FileAttributesTest, WithoutCapSetfcapTheRefusalNamesTheAttributeAndWhatToDo)
{
    const fs::path from = decoratedFile("engine");
    const FileAttributes wanted = readFileAttributes(from);
    withoutCapability(CAP_SETFCAP, false, [&] {
        try {
            copyFileWithAttributes(from, dir / "copy", wanted);
            ADD_FAILURE() << "security.capability was set without CAP_SETFCAP";
        } catch (const AttributeError& e) {
            EXPECT_EQ(e.attribute(), "security.capability");
            const std::string message = e.what();
            for (const std::string& word : {(dir / "copy").string(), from.string(), std::string("security.capability cap_net_bind_service=ep"),
                                            std::string("Operation not permitted"), std::string("CAP_SETFCAP"), std::string("setcap -r")})
                EXPECT_NE(message.find(word), std::string::npos) << "no '" << word << "' in: " << message;
        }
    });
    EXPECT_FALSE(fs::exists(dir / "copy")) << "a partial copy was left";
}

// With no SELinux loaded the kernel lets only CAP_SYS_ADMIN write security.selinux.
TEST_F(FileAttributesTest, ASelinuxLabelThatCannotBeWrittenIsRefusedByName)
{
    if (fs::exists("/sys/fs/selinux/enforce"))
        GTEST_SKIP() << "SELinux is loaded: its policy, not CAP_SYS_ADMIN, decides";
    const fs::path from = dir / "labelled";
    makeEngineFile(from, "labelled");
    setAttribute(from, selinuxAttribute, selinuxLabel);
    const FileAttributes wanted = readFileAttributes(from);
    withoutCapability(CAP_SYS_ADMIN, false, [&] {
        const fs::path probe = dir / "probe";
        makeEngineFile(probe, "probe");
        if (::setxattr(probe.c_str(), selinuxAttribute, selinuxLabel.data(), selinuxLabel.size(), 0) == 0)
            GTEST_SKIP() << "this kernel lets a thread without CAP_SYS_ADMIN write security.selinux";
        try {
            copyFileWithAttributes(from, dir / "copy", wanted);
            ADD_FAILURE() << "security.selinux was set without CAP_SYS_ADMIN";
        } catch (const AttributeError& e) {
            EXPECT_EQ(e.attribute(), "security.selinux");
            EXPECT_NE(std::string(e.what()).find("security.selinux system_u:object_r:bin_t:s0"), std::string::npos) << e.what();
        }
    });
}

TEST_F(FileAttributesTest, TellsWhichCapabilitiesTheBoundingSetLacks)
{
    auto caps = decodeFileCapabilities(capabilityValue(CAP_NET_BIND_SERVICE, true));
    ASSERT_TRUE(caps);
    EXPECT_TRUE(caps->effective);
    EXPECT_EQ(caps->permitted, std::uint64_t{1} << CAP_NET_BIND_SERVICE);
    EXPECT_EQ(capabilityNames((std::uint64_t{1} << CAP_CHOWN) | (std::uint64_t{1} << CAP_SYS_ADMIN)), "cap_chown,cap_sys_admin");
    EXPECT_FALSE(decodeFileCapabilities("junk"));

    FileAttributes effective = FileAttributes::ofNewFile(0755);
    effective.capability = capabilityValue(CAP_NET_BIND_SERVICE, true);
    FileAttributes permittedOnly = effective;
    permittedOnly.capability = capabilityValue(CAP_NET_BIND_SERVICE, false);
    EXPECT_EQ(whyNotRunnableHere(effective), "");
    withoutCapability(CAP_NET_BIND_SERVICE, true, [&] {
        const std::string why = whyNotRunnableHere(effective);
        EXPECT_NE(why.find("cap_net_bind_service"), std::string::npos) << why;
        EXPECT_NE(why.find("EPERM"), std::string::npos) << why;
        EXPECT_EQ(whyNotRunnableHere(permittedOnly), "") << "the kernel runs a file whose capabilities are not marked effective";
    });
}

TEST_F(FileAttributesTest, AnInstalledTargetOthersCouldChangeIsRefusedNamingTheAttribute)
{
    const fs::path target = dir / "docker";
    EXPECT_EQ(attributesToCarry("docker", target, 0750), FileAttributes::ofNewFile(0750)) << "no target: a new file's";
    makeEngineFile(target, "target");
    ASSERT_EQ(::chmod(target.c_str(), 0775), 0);
    try {
        attributesToCarry("docker", target, 0755);
        ADD_FAILURE() << "a group-writable target was accepted";
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::PayloadRejected);
        EXPECT_NE(std::string(e.what()).find("mode 0775"), std::string::npos) << e.what();
    }
    ASSERT_EQ(::chmod(target.c_str(), 0755), 0);
    ASSERT_EQ(::chown(target.c_str(), 1000, 0), 0);
    try {
        attributesToCarry("docker", target, 0755);
        ADD_FAILURE() << "a target owned by uid 1000 was accepted";
    } catch (const AgentError& e) {
        EXPECT_NE(std::string(e.what()).find("owned by uid 1000"), std::string::npos) << e.what();
    }
}

// Through the agent: the engine target is root:5, 04750, cap_net_bind_service+ep.
class AttributesKeptTest : public AgentFixture {
protected:
    void SetUp() override
    {
        if (::geteuid() != 0)
            GTEST_SKIP() << "needs root: chown and security.capability";
        AgentFixture::SetUp();
        ASSERT_EQ(::chown(enginePath().c_str(), 0, 5), 0);
        ASSERT_EQ(::chmod(enginePath().c_str(), 04750), 0);
        setAttribute(enginePath(), capabilityAttribute, capabilityValue(CAP_NET_BIND_SERVICE, true));
        installed = readFileAttributes(enginePath());
    }
    FileAttributes installed;
};

TEST_F(AttributesKeptTest, AnUpgradeARollbackAndTheBackupKeepOwnerModeAndCapability)
{
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    EXPECT_NE(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_EQ(describeAttributes(readFileAttributes(enginePath())), describeAttributes(installed)) << "the new file";

    // The backup copy carries them and its manifest records them.
    const auto backups = agent->listBackups();
    ASSERT_EQ(backups.size(), 1u);
    const fs::path set = dir / "state/backups" / backups.front().id;
    EXPECT_EQ(readFileAttributes(set / "docker"), installed);
    const auto manifest = nlohmann::json::parse(slurpFile(set / "manifest.json"));
    const auto& docker = manifest.at("members").at(0).at("name") == "docker" ? manifest.at("members").at(0) : manifest.at("members").at(1);
    EXPECT_EQ(docker.at("attributes").at("mode").get<unsigned>(), 04750u);
    EXPECT_EQ(docker.at("attributes").at("gid").get<unsigned>(), 5u);
    EXPECT_EQ(docker.at("attributes").at("security.capability").get<std::string>(), "0100000200040000000000000000000000000000");

    agent->rollback();
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_EQ(describeAttributes(readFileAttributes(enginePath())), describeAttributes(installed)) << "the restored file";
    expectNoLeftovers();
}

// The same with the automatic rollback of a new engine that fails its check.
TEST_F(AttributesKeptTest, AnEngineThatFailsItsCheckIsRolledBackWithItsAttributes)
{
    startAgent();
    upgradeTo(newEngine("engine-broken", "2.0.0", true), TransactionResult::RolledBack);
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_EQ(describeAttributes(readFileAttributes(enginePath())), describeAttributes(installed));
    expectNoLeftovers();
}

// The same bytes backed up again after a chmod and a setcap by hand: the
// kept set's copy takes what the installed file is now, and a rollback to it
// puts that back.
TEST_F(AttributesKeptTest, AKeptSetTakesTheAttributesTheInstalledFileHasNow)
{
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    agent->rollback();
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    ASSERT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    ASSERT_EQ(::chmod(enginePath().c_str(), 0750), 0);
    setAttribute(enginePath(), capabilityAttribute, capabilityValue(CAP_KILL, true));
    const FileAttributes changed = readFileAttributes(enginePath());
    upgradeTo(newEngine("engine-v3", "3.0.0"), TransactionResult::Success);
    std::string v1Id;
    for (const auto& b : agent->listBackups())
        if (b.version == "1.0.0")
            v1Id = b.id;
    ASSERT_FALSE(v1Id.empty());
    EXPECT_EQ(readFileAttributes(dir / "state/backups" / v1Id / "docker"), changed);
    agent->rollbackTo(v1Id);
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_EQ(describeAttributes(readFileAttributes(enginePath())), describeAttributes(changed));
}

// A backup copy whose mode was changed is a damaged backup: named, marked,
// skipped for the next healthy set, never installed.
TEST_F(AttributesKeptTest, ABackupCopyWithOtherAttributesIsDamaged)
{
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    upgradeTo(newEngine("engine-v3", "3.0.0"), TransactionResult::Success);
    std::string v2Id;
    for (const auto& b : agent->listBackups())
        if (b.version == "2.0.0")
            v2Id = b.id;
    ASSERT_FALSE(v2Id.empty());
    ASSERT_EQ(::chmod((dir / "state/backups" / v2Id / "docker").c_str(), 0700), 0);
    agent->rollback();
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha) << "the 1.0.0 set, the next healthy one";
    EXPECT_NE(agent->status().message.find(v2Id), std::string::npos) << agent->status().message;
    for (const auto& b : agent->listBackups()) {
        if (b.id == v2Id) {
            EXPECT_EQ(b.health, "damaged");
        }
    }
    EXPECT_EQ(describeAttributes(readFileAttributes(enginePath())), describeAttributes(installed));
}

}  // namespace
}  // namespace armdock::test
