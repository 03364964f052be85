#include "source_verifier.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include "elf_check.hpp"
#include "errors.hpp"

namespace armdock {

namespace {

constexpr std::size_t elfHeadSize = 64;

std::string octalMode(mode_t mode)
{
    std::ostringstream out;
    out << "0" << std::oct << (mode & 07777);
    return out.str();
}


// Builds the messages, which all name the payload and the path.
class SourceWalker {
public:
    SourceWalker(const std::string& payloadName, const std::string& path, const SourceRules& rules)
        : payload_(payloadName), path_(path), rules_(rules)
    {
    }

    OpenedSource open()
    {
        if (path_.empty() || path_.front() != '/')
            throw AgentError(ErrorKind::InvalidArgument, "payload " + payload_ + ": source path \"" + path_
                                                             + "\" is not absolute; give the full path starting with /");
        std::vector<std::string> parts = split();
        if (parts.empty())
            reject("is a folder, not a file; give the path of the " + payload_ + " binary");
        UniqueFd folder = openFolders(parts);
        OpenedSource source{payload_, path_, openLast(folder, parts), {}};
        checkStat(source);
        checkElf(source);
        return source;
    }

    // A descriptor the client opened: what open() checks after its open, and
    // that the client could not write through it.
    OpenedSource adopt(UniqueFd fd)
    {
        OpenedSource source{payload_, path_, std::move(fd), {}};
        // sdbus-c++ hands over a dup() without FD_CLOEXEC: keep it out of the version probe's child.
        if (::fcntl(source.fd.get(), F_SETFD, FD_CLOEXEC) != 0)
            reject(std::string("cannot be used (fcntl: ") + std::strerror(errno) + ")");
        checkStat(source);
        checkReadOnly(source);
        checkElf(source);
        return source;
    }

private:
    std::string payload_;
    std::string path_;
    const SourceRules& rules_;

    [[noreturn]] void reject(const std::string& problem) const
    {
        throw AgentError(ErrorKind::PayloadRejected, "payload " + payload_ + ": " + path_ + " " + problem);
    }

    // parts[index] is missing (ENOENT) or closed (EACCES): is it, or the folder
    // it is in, one that the agent's unit hides?
    const HiddenFolder* hiddenBySandbox(const std::vector<std::string>& parts, std::size_t index, int error) const
    {
        if (error != ENOENT && error != EACCES)
            return nullptr;
        for (const auto& hidden : rules_.hiddenFolders)
            if (hidden.folder == prefix(parts, index) || hidden.folder == prefix(parts, index + 1))
                return &hidden;
        return nullptr;
    }

    // Not the caller's mistake in the path: the file is there, in a folder the
    // agent's sandboxing replaced. Say so, and how to pass it anyway.
    [[noreturn]] void hiddenFromAgent(const HiddenFolder& hidden) const
    {
        const std::string effect = hidden.directive.starts_with("PrivateTmp")
                                       ? "which gives it a " + hidden.folder + " of its own"
                                       : "which hides " + hidden.folder + " from it";
        throw AgentError(ErrorKind::InvalidArgument,
                         "payload " + payload_ + ": " + path_ + " cannot be seen by the agent: its unit runs with "
                             + hidden.directive + ", " + effect + "; use `armdockctl upgrade`, which opens the file "
                             "itself and passes it to the agent, or put the file in the drop-in folder or another "
                             "folder the agent sees (not under /tmp, /var/tmp, /home, /root or /run/user)");
    }

    std::vector<std::string> split() const
    {
        std::vector<std::string> parts;
        std::string part;
        std::istringstream in(path_);
        while (std::getline(in, part, '/'))
            if (!part.empty())
                parts.push_back(part);
        return parts;
    }

    static std::string prefix(const std::vector<std::string>& parts, std::size_t count)
    {
        std::string out;
        for (std::size_t i = 0; i < count; ++i)
            out += "/" + parts[i];
        return out.empty() ? "/" : out;
    }

    // Each folder is opened relative to the previous one with O_NOFOLLOW, so
    // no symlink anywhere on the way is followed (openat2's RESOLVE_NO_SYMLINKS
    // without needing a 5.6 kernel).
    UniqueFd openFolders(const std::vector<std::string>& parts) const
    {
        UniqueFd folder(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!folder)
            reject(std::string("cannot be reached: cannot open / (") + std::strerror(errno) + ")");
        for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
            int fd = ::openat(folder.get(), parts[i].c_str(), O_RDONLY | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
            if (fd < 0)
                folderProblem(folder.get(), parts, i, errno);
            folder.reset(fd);
        }
        return folder;
    }

    [[noreturn]] void folderProblem(int parentFd, const std::vector<std::string>& parts, std::size_t index, int error) const
    {
        std::string folder = prefix(parts, index + 1);
        if (const HiddenFolder* hidden = hiddenBySandbox(parts, index, error))
            hiddenFromAgent(*hidden);
        if (error == ENOENT)
            reject("does not exist (there is no folder " + folder + "); check the path");
        if (error == ELOOP || error == ENOTDIR) {
            struct stat st {};
            if (::fstatat(parentFd, parts[index].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(st.st_mode))
                reject("cannot be reached: " + folder + " is " + fileKind(st.st_mode) + ", not a folder; check the path");
            reject("has a symlink in " + folder + "; symlinks are not followed, give the real path");
        }
        reject("cannot be reached: cannot open folder " + folder + " (" + std::strerror(error) + ")");
    }

    // Looks before opening, so that a device node is never opened (opening a
    // tape or a terminal has side effects); the fstat after open decides.
    UniqueFd openLast(const UniqueFd& folder, const std::vector<std::string>& parts) const
    {
        const std::string& name = parts.back();
        struct stat st {};
        if (::fstatat(folder.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            const int error = errno;
            if (const HiddenFolder* hidden = hiddenBySandbox(parts, parts.size() - 1, error))
                hiddenFromAgent(*hidden);
            openProblem(error);
        }
        if (S_ISLNK(st.st_mode))
            reject("is a symlink; give the path of the file itself (symlinks are refused)");
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISFIFO(st.st_mode))
            reject("is " + fileKind(st.st_mode) + ", not a regular file; give the path of the " + payload_ + " binary");
        int fd = ::openat(folder.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            openProblem(errno);
        return UniqueFd(fd);
    }

    [[noreturn]] void openProblem(int error) const
    {
        if (error == ENOENT)
            reject("does not exist; check the path");
        if (error == ELOOP)
            reject("is a symlink; give the path of the file itself (symlinks are refused)");
        reject(std::string("cannot be opened (") + std::strerror(error) + ")");
    }

    void checkStat(OpenedSource& source) const
    {
        if (::fstat(source.fd.get(), &source.st) != 0)
            reject(std::string("cannot be examined (fstat: ") + std::strerror(errno) + ")");
        const struct stat& st = source.st;
        if (!S_ISREG(st.st_mode))
            reject("is " + fileKind(st.st_mode) + ", not a regular file; give the path of the " + payload_ + " binary");
        if (st.st_uid != rules_.requiredOwner)
            reject("is owned by uid " + std::to_string(st.st_uid) + ", not " + ownerName() + "; chown "
                   + ownerName() + " it (only " + ownerName() + " may be able to change what the agent installs)");
        bool groupWritable = (st.st_mode & S_IWGRP) != 0;
        bool worldWritable = (st.st_mode & S_IWOTH) != 0;
        if (groupWritable || worldWritable) {
            std::string who = groupWritable && worldWritable ? "group- and world-writable"
                              : groupWritable               ? "group-writable"
                                                            : "world-writable";
            reject("is " + who + " (mode " + octalMode(st.st_mode) + "); chmod go-w it");
        }
        if (st.st_size == 0)
            reject("is empty; give the " + payload_ + " binary, the copy may have failed");
    }

    // A writable descriptor would let its holder change the file after these
    // checks without any write permission on it, which is what the owner and
    // mode checks rule out; an O_PATH one cannot be read. armdockctl opens O_RDONLY.
    void checkReadOnly(const OpenedSource& source) const
    {
        const int flags = ::fcntl(source.fd.get(), F_GETFL);
        if (flags < 0)
            reject(std::string("cannot be examined (fcntl: ") + std::strerror(errno) + ")");
        if ((flags & O_PATH) != 0)
            reject("was passed as an O_PATH descriptor, which cannot be read; open it with O_RDONLY");
        if ((flags & O_ACCMODE) != O_RDONLY)
            reject(std::string("was passed as a descriptor opened for ")
                   + ((flags & O_ACCMODE) == O_WRONLY ? "writing only" : "reading and writing")
                   + "; open it with O_RDONLY (a writable descriptor could change the file after it was checked)");
    }

    std::string ownerName() const
    {
        return rules_.requiredOwner == 0 ? "root" : "uid " + std::to_string(rules_.requiredOwner);
    }

    void checkElf(const OpenedSource& source) const
    {
        std::array<std::byte, elfHeadSize> head{};
        ssize_t got;
        do {
            got = ::pread(source.fd.get(), head.data(), head.size(), 0);
        } while (got < 0 && errno == EINTR);
        if (got < 0)
            reject(std::string("cannot be read (") + std::strerror(errno) + ")");
        auto verdict = checkElfExecutable(std::span<const std::byte>(head.data(), static_cast<std::size_t>(got)),
                                          static_cast<std::uint64_t>(source.st.st_size), rules_.elfMachine);
        if (!verdict.ok)
            reject("is not an executable for this machine: " + verdict.problem + "; give the "
                   + elfMachineName(rules_.elfMachine) + " build of " + payload_);
    }
};

// mountinfo writes a space, tab, newline or backslash in a path as \ooo.
std::string unescapeMountField(const std::string& field)
{
    auto octal = [](char c) { return c >= '0' && c <= '7'; };
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size() && octal(field[i + 1]) && octal(field[i + 2]) && octal(field[i + 3])) {
            out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0'));
            i += 3;
        } else {
            out += field[i];
        }
    }
    return out;
}

}  // namespace

std::vector<HiddenFolder> hiddenFoldersIn(std::string_view mountinfo)
{
    // What systemd mounts there: PrivateTmp=yes binds /tmp/systemd-private-*-UNIT-*/tmp;
    // ProtectHome=yes (InaccessiblePaths=) binds /run/systemd/inaccessible/dir.
    struct Watched {
        const char* folder;
        const char* directive;
        const char* rootMarker;
    };
    static constexpr Watched watched[] = {
        {"/tmp", "PrivateTmp=yes", "/systemd-private-"},  {"/var/tmp", "PrivateTmp=yes", "/systemd-private-"},
        {"/home", "ProtectHome=yes", "/inaccessible"},    {"/root", "ProtectHome=yes", "/inaccessible"},
        {"/run/user", "ProtectHome=yes", "/inaccessible"},
    };
    std::map<std::string, bool> hidden;  // the last mount on a folder decides
    std::istringstream lines{std::string(mountinfo)};
    for (std::string line; std::getline(lines, line);) {
        std::istringstream fields(line);
        std::string id, parent, device, root, mountPoint;
        if (!(fields >> id >> parent >> device >> root >> mountPoint))
            continue;
        root = unescapeMountField(root);
        mountPoint = unescapeMountField(mountPoint);
        for (const auto& w : watched)
            if (mountPoint == w.folder)
                hidden[w.folder] = root.find(w.rootMarker) != std::string::npos;
    }
    std::vector<HiddenFolder> out;
    for (const auto& w : watched)
        if (hidden[w.folder])
            out.push_back({w.folder, w.directive});
    return out;
}

const std::vector<HiddenFolder>& hiddenFoldersOfThisProcess()
{
    static const std::vector<HiddenFolder> folders = [] {
        std::ifstream in("/proc/self/mountinfo");
        std::ostringstream text;
        text << in.rdbuf();
        return hiddenFoldersIn(text.str());
    }();
    return folders;
}

OpenedSource openAndCheckSource(const std::string& payloadName, const std::string& path, const SourceRules& rules)
{
    return SourceWalker(payloadName, path, rules).open();
}

OpenedSource checkOpenedSource(const std::string& payloadName, const std::string& label, UniqueFd fd, const SourceRules& rules)
{
    return SourceWalker(payloadName, label, rules).adopt(std::move(fd));
}

std::string fileKind(mode_t mode)
{
    static constexpr std::pair<mode_t, const char*> kinds[] = {
        {S_IFREG, "a regular file"}, {S_IFDIR, "a folder"},          {S_IFIFO, "a FIFO (named pipe)"}, {S_IFSOCK, "a socket"},
        {S_IFCHR, "a character device"}, {S_IFBLK, "a block device"}, {S_IFLNK, "a symlink"},
    };
    for (const auto& [type, kind] : kinds)
        if ((mode & S_IFMT) == type)
            return kind;
    return "of an unknown file type";
}

}  // namespace armdock
