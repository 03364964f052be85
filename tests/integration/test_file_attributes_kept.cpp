// What a file is, is kept, against the real parts (systemd user manager,
// dbus-daemon, dockerd): the installed engine is root:GROUP, setuid, has a
// file capability (`setcap`) and an SELinux label; an upgrade gives the new
// file all of them, the automatic rollback of a failing engine and the
// Rollback() method put them back with the old bytes.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

// Some group other than root's: the agent accepts any group on a root-owned file.
constexpr gid_t engineGroup = 50;
constexpr mode_t engineMode = 04750;
const std::string selinuxLabel = std::string("system_u:object_r:container_runtime_exec_t:s0") + '\0';

struct Attributes {
    uid_t uid = 0;
    gid_t gid = 0;
    mode_t mode = 0;
    std::string capability;  // raw security.capability, "" when none
    std::string selinux;     // raw security.selinux, "" when none
    bool operator==(const Attributes&) const = default;
};

std::string xattrOf(const fs::path& file, const char* name)
{
    char value[256];
    const ssize_t got = ::getxattr(file.c_str(), name, value, sizeof value);
    return got < 0 ? std::string() : std::string(value, static_cast<std::size_t>(got));
}

Attributes attributesOf(const fs::path& file)
{
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0)
        return {};
    return {st.st_uid, st.st_gid, st.st_mode & 07777, xattrOf(file, "security.capability"), xattrOf(file, "security.selinux")};
}

std::ostream& operator<<(std::ostream& out, const Attributes& a)
{
    char mode[8];
    std::snprintf(mode, sizeof mode, "0%o", static_cast<unsigned>(a.mode));
    return out << a.uid << ":" << a.gid << " " << mode << " capability " << a.capability.size() << " bytes, label '"
               << a.selinux.c_str() << "'";
}

class FileAttributesKeptTest : public AgentSandboxTest {
protected:
    // What a package's postinst might have done to the installed engine.
    void decorateEngine()
    {
        const fs::path engine = sandbox->payloadPath("docker");
        ASSERT_EQ(::chown(engine.c_str(), 0, engineGroup), 0) << std::strerror(errno);
        ASSERT_EQ(::chmod(engine.c_str(), engineMode), 0) << std::strerror(errno);
        const auto setcap = sandbox->run({"setcap", "cap_net_bind_service+ep", engine.string()});
        ASSERT_EQ(setcap.exitCode, 0) << "setcap (package libcap2-bin): " << setcap.output;
        if (!fs::exists("/sys/fs/selinux/enforce")) {  // with SELinux the policy labels it
            ASSERT_EQ(::setxattr(engine.c_str(), "security.selinux", selinuxLabel.data(), selinuxLabel.size(), 0), 0) << std::strerror(errno);
        }
        installed = attributesOf(engine);
        ASSERT_FALSE(installed.capability.empty());
        const auto getcap = sandbox->run({"getcap", engine.string()});
        std::cout << "  installed engine: " << installed << "; getcap: " << getcap.output;
    }

    void expectKept(const std::string& when)
    {
        const fs::path engine = sandbox->payloadPath("docker");
        EXPECT_EQ(attributesOf(engine), installed) << when;
        const auto getcap = sandbox->run({"getcap", engine.string()});
        EXPECT_NE(getcap.output.find("cap_net_bind_service=ep"), std::string::npos) << when << ": " << getcap.output;
        std::cout << "  " << when << ": " << attributesOf(engine) << "\n";
    }

    Attributes installed;
};

TEST_F(FileAttributesKeptTest, OwnerModeAndExtendedAttributesSurviveUpgradeAndRollback)
{
    startAll({{"docker.health_timeout_sec", "5"}, {"docker.grace_sec", "1"}});
    decorateEngine();
    const fs::path engine = sandbox->payloadPath("docker");

    // The upgrade: new bytes, the old file's owner, mode, capability and label.
    const fs::path fresh = newGoodEngine("armdock-attributes-v2");
    ASSERT_EQ(client->waitFinished(client->upgrade({{"docker", fresh.string()}})), "success") << client->property("LastError");
    EXPECT_EQ(sha256Of(engine), sha256Of(fresh));
    expectKept("after the upgrade");
    EXPECT_TRUE(sandbox->ping());

    // A new engine that exits at once: rolled back by itself, to v2 with its attributes.
    const fs::path failing = testEngine("engine_exits");
    ASSERT_EQ(client->waitFinished(client->upgrade({{"docker", failing.string()}})), "rolled-back") << client->property("LastError");
    EXPECT_EQ(sha256Of(engine), sha256Of(fresh));
    expectKept("after the automatic rollback");
    EXPECT_TRUE(sandbox->ping());

    // Rollback(): the engine that ran first, from its backup.
    ASSERT_EQ(client->waitFinished(client->rollback()), "success") << client->property("LastError");
    EXPECT_EQ(sha256Of(engine), oldEngineSha);
    expectKept("after Rollback()");
    EXPECT_TRUE(sandbox->ping());
}

}  // namespace
}  // namespace armdock::test
