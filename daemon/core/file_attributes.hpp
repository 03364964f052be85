// What a file is besides its bytes, as far as running it goes: its owner,
// its mode (with the setuid, setgid and sticky bits) and two extended
// attributes, security.capability (file capabilities, what `setcap` writes)
// and security.selinux (its SELinux label). An upgrade gives the new file the
// attributes of the file it replaces, a backup keeps them (its copy carries
// them and its manifest records them), a restore puts them back.
// Everything works on descriptors (fstat, fgetxattr, fchown, fchmod,
// fsetxattr) and throws AttributeError naming the file and the attribute.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace armdock {

inline constexpr const char* capabilityAttribute = "security.capability";
inline constexpr const char* selinuxAttribute = "security.selinux";

struct FileAttributes {
    uid_t uid = 0;
    gid_t gid = 0;
    mode_t mode = 0755;                     // permission bits and 07000 (setuid, setgid, sticky)
    std::optional<std::string> capability;  // the raw value of security.capability; nullopt: none
    std::optional<std::string> selinux;     // the raw value of security.selinux (with its NUL, if any)

    bool operator==(const FileAttributes&) const = default;

    // A file put where there was none: root's, `mode`, no extended attributes.
    static FileAttributes ofNewFile(mode_t mode) { return FileAttributes{0, 0, mode & 07777, std::nullopt, std::nullopt}; }
};

// Reading or applying an attribute failed; what() names the file, the
// attribute, the errno text and what to do.
class AttributeError : public std::runtime_error {
public:
    AttributeError(std::string attribute, const std::string& message)
        : std::runtime_error(message), attribute_(std::move(attribute))
    {
    }
    const std::string& attribute() const noexcept { return attribute_; }  // "owner", "mode", "security.capability"...

private:
    std::string attribute_;
};

// The attributes of the file open at `fd` (`name` is for messages). A
// filesystem without extended attributes reads as having none.
FileAttributes readFileAttributes(int fd, const std::filesystem::path& name);
// The same for a path, following symbolic links.
FileAttributes readFileAttributes(const std::filesystem::path& file);

// Gives the file open at `fd` exactly `attributes`, in the order the kernel
// needs: the owner first (chown clears the setuid and setgid bits and
// security.capability), then the mode, then security.capability (set, or
// removed if the file has one and `attributes` none), then security.selinux
// (set when given and different; a label is never removed: with SELinux every
// file has one). Reads them back and throws if they differ. `from` names the
// file whose attributes these are, for the advice in messages.
void applyFileAttributes(int fd, const std::filesystem::path& name, const FileAttributes& attributes,
                         const std::filesystem::path& from = {});

// Copies `from` to `to` (created, replacing nothing) with `attributes`
// applied after the last byte is written (a write clears setuid bits and
// capabilities), fsyncs it and its folder; returns the SHA-256 of what was
// copied. A partial copy is removed.
std::string copyFileWithAttributes(const std::filesystem::path& from, const std::filesystem::path& to,
                                   const FileAttributes& attributes);

// "owner 0:0, mode 04755, security.capability cap_net_bind_service=ep": for messages and logs.
std::string describeAttributes(const FileAttributes& attributes);
// The first difference of `actual` from `expected` ("mode 0700, not 0755");
// "" when they match. An `expected` with no security.selinux matches any
// label (none is ever removed, see applyFileAttributes).
std::string attributeDifference(const FileAttributes& expected, const FileAttributes& actual);

// A decoded security.capability value (revision 1, 2 or 3).
struct FileCapabilities {
    std::uint64_t permitted = 0;
    std::uint64_t inheritable = 0;
    bool effective = false;
};
std::optional<FileCapabilities> decodeFileCapabilities(std::string_view raw);
// "cap_net_bind_service,cap_sys_admin"; numbers for capabilities this build does not name.
std::string capabilityNames(std::uint64_t mask);
// The capabilities of `mask` that this process's bounding set lacks.
std::uint64_t missingFromBoundingSet(std::uint64_t mask);
// Why the kernel would refuse to run a file with these attributes for this
// process (execve fails with EPERM when the file's capabilities are marked
// effective and its permitted ones exceed the caller's bounding set); "" when
// it would run it.
std::string whyNotRunnableHere(const FileAttributes& attributes);

}  // namespace armdock
