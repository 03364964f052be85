#include "file_attributes.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <vector>

#include "durable_fs.hpp"
#include "unique_fd.hpp"

namespace armdock {

namespace fs = std::filesystem;

namespace {


// Indexed by capability number, as in linux/capability.h.
constexpr const char* capabilityNameTable[] = {
    "cap_chown",          "cap_dac_override",   "cap_dac_read_search", "cap_fowner",          "cap_fsetid",
    "cap_kill",           "cap_setgid",         "cap_setuid",          "cap_setpcap",         "cap_linux_immutable",
    "cap_net_bind_service", "cap_net_broadcast", "cap_net_admin",      "cap_net_raw",         "cap_ipc_lock",
    "cap_ipc_owner",      "cap_sys_module",     "cap_sys_rawio",       "cap_sys_chroot",      "cap_sys_ptrace",
    "cap_sys_pacct",      "cap_sys_admin",      "cap_sys_boot",        "cap_sys_nice",        "cap_sys_resource",
    "cap_sys_time",       "cap_sys_tty_config", "cap_mknod",           "cap_lease",           "cap_audit_write",
    "cap_audit_control",  "cap_setfcap",        "cap_mac_override",    "cap_mac_admin",       "cap_syslog",
    "cap_wake_alarm",     "cap_block_suspend",  "cap_audit_read",      "cap_perfmon",         "cap_bpf",
    "cap_checkpoint_restore",
};

std::string octal(mode_t mode)
{
    char text[16];
    std::snprintf(text, sizeof text, "0%o", static_cast<unsigned>(mode & 07777));
    return text;
}

std::string errnoText(int error) { return std::strerror(error); }

// The value of one extended attribute; nullopt when the file has none (or
// its filesystem has no extended attributes at all).
std::optional<std::string> readAttribute(int fd, const char* attribute, const fs::path& name)
{
    for (;;) {
        ssize_t size = ::fgetxattr(fd, attribute, nullptr, 0);
        if (size < 0) {
            if (errno == ENODATA || errno == ENOTSUP)
                return std::nullopt;
            throw AttributeError(attribute, "cannot read " + std::string(attribute) + " of " + name.string() + ": " + errnoText(errno));
        }
        std::string value(static_cast<std::size_t>(size), '\0');
        ssize_t got = ::fgetxattr(fd, attribute, value.data(), value.size());
        if (got < 0 && errno == ERANGE)
            continue;  // it grew between the two calls
        if (got < 0) {
            if (errno == ENODATA)
                return std::nullopt;
            throw AttributeError(attribute, "cannot read " + std::string(attribute) + " of " + name.string() + ": " + errnoText(errno));
        }
        value.resize(static_cast<std::size_t>(got));
        return value;
    }
}

std::string describeCapability(const std::string& raw)
{
    auto caps = decodeFileCapabilities(raw);
    if (!caps)
        return "(a value of " + std::to_string(raw.size()) + " bytes that is not a file capability)";
    std::string text;
    if (caps->permitted)
        text += capabilityNames(caps->permitted) + (caps->effective ? "=ep" : "=p");
    if (caps->inheritable)
        text += (text.empty() ? "" : " ") + capabilityNames(caps->inheritable) + "=i";
    return text.empty() ? "(empty)" : text;
}

std::string describeLabel(const std::string& raw)
{
    std::string label = raw;
    while (!label.empty() && label.back() == '\0')
        label.pop_back();
    return label;
}

std::string adviceFor(const std::string& attribute, int error, const fs::path& from)
{
    const std::string fromText = from.empty() ? std::string("the file it comes from") : from.string();
    if (error == ENOTSUP || error == EOPNOTSUPP)
        return "the filesystem that holds it keeps no extended attributes; put it (for a backup: the agent's state_dir) on one that does";
    if (attribute == "owner")
        return "the agent needs CAP_CHOWN in the CapabilityBoundingSet= of its unit";
    if (attribute == "mode")
        return "the agent needs CAP_FOWNER and CAP_FSETID in the CapabilityBoundingSet= of its unit";
    if (attribute == capabilityAttribute)
        return "the agent needs CAP_SETFCAP in the CapabilityBoundingSet= of its unit (the shipped unit has it), or remove the "
               "capability from " + fromText + " (`setcap -r`) and set it again after the upgrade";
    return "without SELinux loaded, a kernel with security modules lets only CAP_SYS_ADMIN write it: remove the stale label from " + fromText +
           " (`setfattr -x security.selinux`); with SELinux, the policy must let the agent relabel the file";
}

[[noreturn]] void cannotApply(const std::string& attribute, const std::string& what, const fs::path& name, int error, const fs::path& from)
{
    throw AttributeError(attribute, "cannot give " + name.string() + " " + what + (from.empty() ? "" : " of " + from.string()) + ": " +
                                        errnoText(error) + "; " + adviceFor(attribute, error, from));
}

void setAttribute(int fd, const char* attribute, const std::string& value, const std::string& what, const fs::path& name,
                  const fs::path& from)
{
    if (::fsetxattr(fd, attribute, value.data(), value.size(), 0) != 0)
        cannotApply(attribute, what, name, errno, from);
}

std::uint32_t littleEndian32(std::string_view raw, std::size_t at)
{
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i)
        value |= static_cast<std::uint32_t>(static_cast<unsigned char>(raw[at + i])) << (8 * i);
    return value;
}

}  // namespace

FileAttributes readFileAttributes(int fd, const fs::path& name)
{
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        throw AttributeError("owner", "cannot fstat " + name.string() + ": " + errnoText(errno));
    FileAttributes attributes;
    attributes.uid = st.st_uid;
    attributes.gid = st.st_gid;
    attributes.mode = st.st_mode & 07777;
    attributes.capability = readAttribute(fd, capabilityAttribute, name);
    attributes.selinux = readAttribute(fd, selinuxAttribute, name);
    return attributes;
}

FileAttributes readFileAttributes(const fs::path& file)
{
    // O_PATH descriptors refuse fgetxattr: open it for reading, as the copy does.
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd)
        throw AttributeError("owner", "cannot open " + file.string() + " to read its owner, mode and extended attributes: " + errnoText(errno));
    return readFileAttributes(fd.get(), file);
}

void applyFileAttributes(int fd, const fs::path& name, const FileAttributes& wanted, const fs::path& from)
{
    FileAttributes now = readFileAttributes(fd, name);
    // The owner first: chown(2) clears the setuid and setgid bits and security.capability.
    if (now.uid != wanted.uid || now.gid != wanted.gid) {
        if (::fchown(fd, wanted.uid, wanted.gid) != 0)
            cannotApply("owner", "the owner " + std::to_string(wanted.uid) + ":" + std::to_string(wanted.gid), name, errno, from);
        now.capability.reset();
    }
    if (::fchmod(fd, wanted.mode & 07777) != 0)
        cannotApply("mode", "the mode " + octal(wanted.mode), name, errno, from);
    if (wanted.capability) {
        setAttribute(fd, capabilityAttribute, *wanted.capability,
                     std::string(capabilityAttribute) + " " + describeCapability(*wanted.capability), name, from);
    } else if (now.capability && ::fremovexattr(fd, capabilityAttribute) != 0 && errno != ENODATA) {
        cannotApply(capabilityAttribute, "no security.capability", name, errno, from);
    }
    if (wanted.selinux && wanted.selinux != now.selinux)
        setAttribute(fd, selinuxAttribute, *wanted.selinux, std::string(selinuxAttribute) + " " + describeLabel(*wanted.selinux), name, from);

    const FileAttributes got = readFileAttributes(fd, name);
    const FileAttributes& expected = wanted;
    if (const std::string difference = attributeDifference(expected, got); !difference.empty()) {
        const std::string attribute = difference.substr(0, difference.find(' '));
        throw AttributeError(attribute, "cannot give " + name.string() + " " + describeAttributes(expected) +
                                            (from.empty() ? "" : " of " + from.string()) + ": after they were set it has " + difference);
    }
}

std::string copyFileWithAttributes(const fs::path& from, const fs::path& to, const FileAttributes& attributes)
{
    return copyFileDurably(from, to, [&](int fd) { applyFileAttributes(fd, to, attributes, from); });
}

std::string describeAttributes(const FileAttributes& a)
{
    std::string text = "owner " + std::to_string(a.uid) + ":" + std::to_string(a.gid) + ", mode " + octal(a.mode);
    if (a.capability)
        text += ", " + std::string(capabilityAttribute) + " " + describeCapability(*a.capability);
    if (a.selinux)
        text += ", " + std::string(selinuxAttribute) + " " + describeLabel(*a.selinux);
    return text;
}

std::string attributeDifference(const FileAttributes& expected, const FileAttributes& actual)
{
    auto owner = [](const FileAttributes& a) { return std::to_string(a.uid) + ":" + std::to_string(a.gid); };
    if (expected.uid != actual.uid || expected.gid != actual.gid)
        return "owner " + owner(actual) + ", not " + owner(expected);
    if ((expected.mode & 07777) != (actual.mode & 07777))
        return "mode " + octal(actual.mode) + ", not " + octal(expected.mode);
    auto shown = [](const std::optional<std::string>& v, auto describe) { return v ? describe(*v) : std::string("none"); };
    if (expected.capability != actual.capability)
        return std::string(capabilityAttribute) + " " + shown(actual.capability, describeCapability) + ", not " +
               shown(expected.capability, describeCapability);
    if (expected.selinux && expected.selinux != actual.selinux)
        return std::string(selinuxAttribute) + " " + shown(actual.selinux, describeLabel) + ", not " + shown(expected.selinux, describeLabel);
    return {};
}

std::optional<FileCapabilities> decodeFileCapabilities(std::string_view raw)
{
    if (raw.size() < 4)
        return std::nullopt;
    const std::uint32_t magic = littleEndian32(raw, 0);
    const std::uint32_t revision = magic & VFS_CAP_REVISION_MASK;
    std::size_t words = 0;
    if (revision == VFS_CAP_REVISION_1 && raw.size() == XATTR_CAPS_SZ_1)
        words = 1;
    else if (revision == VFS_CAP_REVISION_2 && raw.size() == XATTR_CAPS_SZ_2)
        words = 2;
    else if (revision == VFS_CAP_REVISION_3 && raw.size() == XATTR_CAPS_SZ_3)
        words = 2;  // and a root uid after them
    else
        return std::nullopt;
    FileCapabilities caps;
    caps.effective = (magic & VFS_CAP_FLAGS_EFFECTIVE) != 0;
    for (std::size_t i = 0; i < words; ++i) {
        caps.permitted |= static_cast<std::uint64_t>(littleEndian32(raw, 4 + 8 * i)) << (32 * i);
        caps.inheritable |= static_cast<std::uint64_t>(littleEndian32(raw, 8 + 8 * i)) << (32 * i);
    }
    return caps;
}

std::string capabilityNames(std::uint64_t mask)
{
    std::string text;
    for (unsigned cap = 0; cap < 64; ++cap) {
        if (!(mask & (std::uint64_t{1} << cap)))
            continue;
        if (!text.empty())
            text += ",";
        text += cap < std::size(capabilityNameTable) ? capabilityNameTable[cap] : "cap_" + std::to_string(cap);
    }
    return text;
}

std::uint64_t missingFromBoundingSet(std::uint64_t mask)
{
    std::uint64_t missing = 0;
    for (unsigned cap = 0; cap < 64; ++cap) {
        if (!(mask & (std::uint64_t{1} << cap)))
            continue;
        // EINVAL: a capability this kernel does not know, which no bounding set holds.
        if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
            missing |= std::uint64_t{1} << cap;
    }
    return missing;
}

std::string whyNotRunnableHere(const FileAttributes& attributes)
{
    if (!attributes.capability)
        return {};
    auto caps = decodeFileCapabilities(*attributes.capability);
    if (!caps || !caps->effective)
        return {};  // without the effective flag the kernel runs it with what it can grant
    const std::uint64_t missing = missingFromBoundingSet(caps->permitted);
    if (!missing)
        return {};
    return "its security.capability (" + describeCapability(*attributes.capability) + ") holds " + capabilityNames(missing) +
           ", which this agent's capability bounding set lacks: the kernel refuses to run such a file for the agent (execve fails "
           "with EPERM)";
}

}  // namespace armdock
