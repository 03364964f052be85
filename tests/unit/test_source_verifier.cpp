#include <gtest/gtest.h>

#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/elf_check.hpp"
#include "core/errors.hpp"
#include "core/source_verifier.hpp"

namespace armdock {
namespace {

namespace fs = std::filesystem;

class SourceVerifierTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        ASSERT_EQ(::geteuid(), 0u) << "these tests chown files and need root";
        std::string pattern = (fs::temp_directory_path() / "armdock-verify-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = fs::canonical(pattern);
    }
    void TearDown() override { fs::remove_all(dir_); }

    // A root-owned, 0755 copy of the host's /bin/true: a valid source.
    std::string goodCopy(const std::string& name = "docker")
    {
        fs::path file = dir_ / name;
        fs::copy_file("/bin/true", file);
        ::chmod(file.c_str(), 0755);
        return file.string();
    }

    std::string writeFile(const std::string& name, const std::string& content, mode_t mode = 0755)
    {
        fs::path file = dir_ / name;
        std::ofstream(file, std::ios::binary) << content;
        ::chmod(file.c_str(), mode);
        return file.string();
    }

    // The AgentError's message, checking its kind.
    std::string rejection(const std::string& path, ErrorKind kind = ErrorKind::PayloadRejected,
                          SourceRules rules = SourceRules{0, hostElfMachine()})
    {
        try {
            openAndCheckSource("docker", path, rules);
        } catch (const AgentError& error) {
            EXPECT_EQ(error.kind(), kind) << error.what();
            return error.what();
        }
        ADD_FAILURE() << path << " was accepted";
        return "";
    }

    fs::path dir_;
};

TEST_F(SourceVerifierTest, AcceptsARootOwnedExecutable)
{
    std::string path = goodCopy();
    OpenedSource source = openAndCheckSource("docker", path, SourceRules{0, hostElfMachine()});
    EXPECT_EQ(source.payloadName, "docker");
    EXPECT_EQ(source.path, path);
    ASSERT_TRUE(source.fd);
    EXPECT_TRUE(S_ISREG(source.st.st_mode));
    EXPECT_EQ(static_cast<std::uintmax_t>(source.st.st_size), fs::file_size(path));
    EXPECT_EQ(::fcntl(source.fd.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    char magic[4];
    ASSERT_EQ(::pread(source.fd.get(), magic, 4, 0), 4);
    EXPECT_EQ(std::memcmp(magic, "\x7f" "ELF", 4), 0);
}

TEST_F(SourceVerifierTest, RelativePathIsAnInvalidArgument)
{
    EXPECT_EQ(rejection("bin/docker", ErrorKind::InvalidArgument),
              "payload docker: source path \"bin/docker\" is not absolute; give the full path starting with /");
    EXPECT_EQ(rejection("", ErrorKind::InvalidArgument),
              "payload docker: source path \"\" is not absolute; give the full path starting with /");
}

TEST_F(SourceVerifierTest, Missing)
{
    std::string missing = (dir_ / "missing").string();
    EXPECT_EQ(rejection(missing), "payload docker: " + missing + " does not exist; check the path");
    std::string inMissingFolder = (dir_ / "nofolder" / "docker").string();
    EXPECT_EQ(rejection(inMissingFolder), "payload docker: " + inMissingFolder + " does not exist (there is no folder "
                                              + (dir_ / "nofolder").string() + "); check the path");
}

TEST_F(SourceVerifierTest, Directory)
{
    fs::create_directory(dir_ / "folder");
    std::string path = (dir_ / "folder").string();
    EXPECT_EQ(rejection(path), "payload docker: " + path + " is a folder, not a regular file; give the path of the docker binary");
    EXPECT_EQ(rejection("/"), "payload docker: / is a folder, not a file; give the path of the docker binary");
}

TEST_F(SourceVerifierTest, Symlink)
{
    std::string real = goodCopy();
    fs::create_symlink(real, dir_ / "link");
    std::string link = (dir_ / "link").string();
    EXPECT_EQ(rejection(link), "payload docker: " + link + " is a symlink; give the path of the file itself (symlinks are refused)");
}

TEST_F(SourceVerifierTest, SymlinkInAParentFolder)
{
    fs::create_directory(dir_ / "real");
    fs::copy_file("/bin/true", dir_ / "real" / "docker");
    fs::create_directory_symlink(dir_ / "real", dir_ / "linked");
    std::string path = (dir_ / "linked" / "docker").string();
    EXPECT_EQ(rejection(path), "payload docker: " + path + " has a symlink in " + (dir_ / "linked").string()
                                   + "; symlinks are not followed, give the real path");
}

TEST_F(SourceVerifierTest, FileUsedAsAFolder)
{
    std::string file = goodCopy();
    std::string path = file + "/docker";
    EXPECT_EQ(rejection(path), "payload docker: " + path + " cannot be reached: " + file
                                   + " is a regular file, not a folder; check the path");
}

TEST_F(SourceVerifierTest, FifoIsRefusedWithoutBlocking)
{
    std::string fifo = (dir_ / "fifo").string();
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    // No writer ever opens it: a blocking open would hang this test.
    EXPECT_EQ(rejection(fifo), "payload docker: " + fifo + " is a FIFO (named pipe), not a regular file; give the path of the docker binary");
}

TEST_F(SourceVerifierTest, SocketAndDevice)
{
    std::string socketPath = (dir_ / "sock").string();
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socketPath.c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(rejection(socketPath), "payload docker: " + socketPath + " is a socket, not a regular file; give the path of the docker binary");
    ::close(fd);
    EXPECT_EQ(rejection("/dev/null"), "payload docker: /dev/null is a character device, not a regular file; give the path of the docker binary");
}

TEST_F(SourceVerifierTest, NotOwnedByRoot)
{
    std::string path = goodCopy();
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
    ::chmod(path.c_str(), 0755);
    EXPECT_EQ(rejection(path), "payload docker: " + path + " is owned by uid 65534, not root; chown root it "
                                   "(only root may be able to change what the agent installs)");
}

TEST_F(SourceVerifierTest, OwnerFromTheRules)
{
    std::string path = goodCopy();
    EXPECT_EQ(rejection(path, ErrorKind::PayloadRejected, SourceRules{1234, hostElfMachine()}),
              "payload docker: " + path + " is owned by uid 0, not uid 1234; chown uid 1234 it "
              "(only uid 1234 may be able to change what the agent installs)");
}

TEST_F(SourceVerifierTest, GroupWritable)
{
    std::string path = goodCopy();
    ::chmod(path.c_str(), 0775);
    EXPECT_EQ(rejection(path), "payload docker: " + path + " is group-writable (mode 0775); chmod go-w it");
}

TEST_F(SourceVerifierTest, WorldWritable)
{
    std::string path = goodCopy();
    ::chmod(path.c_str(), 0757);
    EXPECT_EQ(rejection(path), "payload docker: " + path + " is world-writable (mode 0757); chmod go-w it");
    ::chmod(path.c_str(), 0777);
    EXPECT_EQ(rejection(path), "payload docker: " + path + " is group- and world-writable (mode 0777); chmod go-w it");
}

TEST_F(SourceVerifierTest, Empty)
{
    std::string path = writeFile("docker", "");
    EXPECT_EQ(rejection(path), "payload docker: " + path + " is empty; give the docker binary, the copy may have failed");
}

TEST_F(SourceVerifierTest, ShellScript)
{
    std::string path = writeFile("docker", "#!/bin/sh\nexec /usr/bin/docker.real \"$@\"\n");
    EXPECT_EQ(rejection(path), "payload docker: " + path + " is not an executable for this machine: not an ELF file "
                                   "(it starts with '#!'); give the " + elfMachineName(hostElfMachine()) + " build of docker");
}

TEST_F(SourceVerifierTest, TruncatedElf)
{
    std::string path = goodCopy();
    auto size = fs::file_size(path);
    fs::resize_file(path, 1000);
    std::string message = rejection(path);
    EXPECT_TRUE(message.starts_with("payload docker: " + path + " is not an executable for this machine: truncated ELF: "
                                    "the section header table ends at byte ")) << message;
    EXPECT_NE(message.find("the file has only 1000 bytes"), std::string::npos) << message;
    EXPECT_GT(size, 1000u);
    fs::resize_file(path, 50);
    EXPECT_EQ(rejection(path), "payload docker: " + path + " is not an executable for this machine: truncated ELF: the file "
                                   "is 50 bytes, shorter than the 64-byte ELF header; give the "
                                   + elfMachineName(hostElfMachine()) + " build of docker");
}

TEST_F(SourceVerifierTest, ElfForAnotherMachine)
{
    // The host's own /bin/true with e_machine rewritten to the other architecture.
    std::string path = goodCopy();
    std::uint16_t other = hostElfMachine() == EM_AARCH64 ? EM_X86_64 : EM_AARCH64;
    unsigned char machine[2] = {static_cast<unsigned char>(other & 0xff), static_cast<unsigned char>(other >> 8)};
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_EQ(::pwrite(fd, machine, 2, 18), 2);
    ::close(fd);
    EXPECT_EQ(rejection(path), "payload docker: " + path + " is not an executable for this machine: ELF for "
                                   + elfMachineName(other) + ", this machine runs " + elfMachineName(hostElfMachine())
                                   + "; give the " + elfMachineName(hostElfMachine()) + " build of docker");
}

// ---- A path in a folder the agent's unit hides (PrivateTmp=, ProtectHome=).

TEST_F(SourceVerifierTest, MissingInAFolderTheUnitHidesSaysWhyAndWhatToDo)
{
    SourceRules rules{0, hostElfMachine(), {{"/tmp", "PrivateTmp=yes"}, {"/root", "ProtectHome=yes"}}};
    // dir_ is under /tmp (or TMPDIR); a sibling of it that does not exist.
    const std::string inTmp = "/tmp/" + dir_.filename().string() + "-gone/docker";
    EXPECT_EQ(rejection(inTmp, ErrorKind::InvalidArgument, rules),
              "payload docker: " + inTmp + " cannot be seen by the agent: its unit runs with PrivateTmp=yes, which "
              "gives it a /tmp of its own; use `armdockctl upgrade`, which opens the file itself and passes it to the "
              "agent, or put the file in the drop-in folder or another folder the agent sees (not under /tmp, "
              "/var/tmp, /home, /root or /run/user)");
    const std::string fileInTmp = "/tmp/" + dir_.filename().string() + "-gone";
    EXPECT_NE(rejection(fileInTmp, ErrorKind::InvalidArgument, rules).find("PrivateTmp=yes"), std::string::npos);
    const std::string inRoot = "/root/" + dir_.filename().string() + "-gone/docker";
    EXPECT_NE(rejection(inRoot, ErrorKind::InvalidArgument, rules).find(inRoot + " cannot be seen by the agent: its unit "
                                                                         "runs with ProtectHome=yes, which hides /root from it; use `armdockctl upgrade`"),
              std::string::npos);
}

TEST_F(SourceVerifierTest, MissingDeeperOrWithNoHiddenFolderIsJustMissing)
{
    // A folder the agent does see holds no such file: the caller's mistake.
    SourceRules rules{0, hostElfMachine(), {{dir_.parent_path().string(), "PrivateTmp=yes"}}};
    const std::string deeper = (dir_ / "nofolder" / "docker").string();
    EXPECT_EQ(rejection(deeper, ErrorKind::PayloadRejected, rules),
              "payload docker: " + deeper + " does not exist (there is no folder " + (dir_ / "nofolder").string() + "); check the path");
    const std::string missing = "/tmp/" + dir_.filename().string() + "-gone/docker";
    EXPECT_NE(rejection(missing, ErrorKind::PayloadRejected, SourceRules{0, hostElfMachine(), {}}).find("does not exist"), std::string::npos);
}

TEST(HiddenFolders, FromTheMountTableOfAUnitWithPrivateTmpAndProtectHome)
{
    // Lines as a unit with PrivateTmp=yes and ProtectHome=yes sees them (systemd 252; /tmp on the root fs).
    const std::string mountinfo =
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "40 27 0:30 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw\n"
        "700 40 0:30 /systemd-private-1f2e-armdock-agent.service-Ab12Cd/tmp /tmp rw,nosuid,nodev - tmpfs tmpfs rw\n"
        "701 27 254:0 /tmp/systemd-private-1f2e-armdock-agent.service-Xy34Zw/tmp /var/tmp rw,relatime - ext4 /dev/vda rw\n"
        "702 27 0:25 /systemd/inaccessible/dir /root ro,nosuid,nodev,noexec - tmpfs tmpfs rw,mode=755\n"
        "703 27 0:25 /systemd/inaccessible/dir /run/user ro,nosuid,nodev,noexec - tmpfs tmpfs rw,mode=755\n"
        "704 27 254:0 /srv/with\\040space /home rw - ext4 /dev/vda rw\n";
    const auto hidden = hiddenFoldersIn(mountinfo);
    ASSERT_EQ(hidden.size(), 4u);
    EXPECT_EQ(hidden[0].folder, "/tmp");
    EXPECT_EQ(hidden[0].directive, "PrivateTmp=yes");
    EXPECT_EQ(hidden[1].folder, "/var/tmp");
    EXPECT_EQ(hidden[2].folder, "/root");
    EXPECT_EQ(hidden[2].directive, "ProtectHome=yes");
    EXPECT_EQ(hidden[3].folder, "/run/user");
    // A host without such a unit: /tmp is a plain tmpfs, nothing hidden.
    EXPECT_TRUE(hiddenFoldersIn("27 1 254:0 / / rw - ext4 /dev/vda rw\n40 27 0:30 / /tmp rw - tmpfs tmpfs rw\n").empty());
    EXPECT_TRUE(hiddenFoldersIn("").empty());
}

// ---- A descriptor the client opened (UpgradeFds): the same checks.

class OpenedSourceTest : public SourceVerifierTest {
protected:
    // The AgentError's message for the descriptor, checking its kind.
    std::string descriptorRejection(int fd, const std::string& label = "fd:docker")
    {
        try {
            checkOpenedSource("docker", label, UniqueFd(fd), SourceRules{0, hostElfMachine()});
        } catch (const AgentError& error) {
            EXPECT_EQ(error.kind(), ErrorKind::PayloadRejected) << error.what();
            return error.what();
        }
        ADD_FAILURE() << label << " was accepted";
        return "";
    }

    static int openedAs(const std::string& path, int flags) { return ::open(path.c_str(), flags | O_NONBLOCK); }
};

TEST_F(OpenedSourceTest, AcceptsARootOwnedExecutableAndKeepsItFromChildren)
{
    std::string path = goodCopy();
    const int fd = ::open(path.c_str(), O_RDONLY);  // no O_CLOEXEC, like the dup sdbus-c++ hands over
    ASSERT_GE(fd, 0);
    OpenedSource source = checkOpenedSource("docker", "/where/the/client/found/docker", UniqueFd(fd), SourceRules{0, hostElfMachine()});
    EXPECT_EQ(source.payloadName, "docker");
    EXPECT_EQ(source.path, "/where/the/client/found/docker");
    EXPECT_EQ(source.fd.get(), fd);
    EXPECT_TRUE(S_ISREG(source.st.st_mode));
    EXPECT_EQ(static_cast<std::uintmax_t>(source.st.st_size), fs::file_size(path));
    EXPECT_EQ(::fcntl(source.fd.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST_F(OpenedSourceTest, TheChecksOfAPath)
{
    std::string path = goodCopy();
    ::chmod(path.c_str(), 0775);
    EXPECT_EQ(descriptorRejection(openedAs(path, O_RDONLY)), "payload docker: fd:docker is group-writable (mode 0775); chmod go-w it");
    ::chmod(path.c_str(), 0755);
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
    ::chmod(path.c_str(), 0755);
    EXPECT_EQ(descriptorRejection(openedAs(path, O_RDONLY), "/srv/docker"),
              "payload docker: /srv/docker is owned by uid 65534, not root; chown root it "
              "(only root may be able to change what the agent installs)");
    std::string script = writeFile("script", "#!/bin/sh\n");
    EXPECT_NE(descriptorRejection(openedAs(script, O_RDONLY)).find("fd:docker is not an executable for this machine: not an ELF file"),
              std::string::npos);
    std::string fifo = (dir_ / "fifo").string();
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_EQ(descriptorRejection(openedAs(fifo, O_RDONLY)),
              "payload docker: fd:docker is a FIFO (named pipe), not a regular file; give the path of the docker binary");
    EXPECT_EQ(descriptorRejection(openedAs(dir_.string(), O_RDONLY)),
              "payload docker: fd:docker is a folder, not a regular file; give the path of the docker binary");
    EXPECT_EQ(descriptorRejection(-1), "payload docker: fd:docker cannot be used (fcntl: Bad file descriptor)");
}

TEST_F(OpenedSourceTest, ADescriptorThatCouldWriteOrNotReadIsRefused)
{
    std::string path = goodCopy();
    EXPECT_EQ(descriptorRejection(openedAs(path, O_RDWR)),
              "payload docker: fd:docker was passed as a descriptor opened for reading and writing; open it with O_RDONLY "
              "(a writable descriptor could change the file after it was checked)");
    EXPECT_EQ(descriptorRejection(openedAs(path, O_WRONLY)),
              "payload docker: fd:docker was passed as a descriptor opened for writing only; open it with O_RDONLY "
              "(a writable descriptor could change the file after it was checked)");
    EXPECT_EQ(descriptorRejection(openedAs(path, O_PATH)),
              "payload docker: fd:docker was passed as an O_PATH descriptor, which cannot be read; open it with O_RDONLY");
}

}  // namespace
}  // namespace armdock
