// Backups of whole engine sets in <state_dir>/backups/<id>/: one file per
// payload plus manifest.json. A set's id is derived from its content (the
// SHA-256 of every payload), so each distinct set is kept once; backing up a
// set that is already there only refreshes its time. All methods do file I/O:
// call them off the event loop, except list(), which answers from memory.
//
// list() keeps what it read (ListBackups is answered on the event loop, and
// reading every manifest made it 5x slower than a systemd property read).
// Every change made through this store refreshes the kept list before it
// returns; a change made by hand in backups/ (a set deleted or copied in) is
// noticed by a stat of that folder on each call (its link count, which counts
// the set folders, its mtime and ctime, its inode). A manifest edited by hand
// in place is not noticed until the next change.
// A member's backup copy carries the owner, mode, security.capability and
// security.selinux of the file it copies, and the manifest records them; a
// set already kept whose files had other attributes gets the installed ones.
// Each set also has a health, kept in <state_dir>/set-health.json by set id
// (so it outlives a set's removal and re-creation): healthy once it passed a
// check on this host, failed when it failed one and never passed, damaged when
// a file of its backup no longer has the SHA-256 its manifest records.
// Thread-safe: the event loop reads while the pool changes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "file_attributes.hpp"

namespace armdock {

struct SetMember {
    SetMember(std::string name_ = {}, std::filesystem::path target_ = {}, bool present_ = false, std::string sha256_ = {},
              std::string linkTarget_ = {}, std::optional<FileAttributes> attributes_ = std::nullopt)
        : name(std::move(name_)), target(std::move(target_)), present(present_), sha256(std::move(sha256_)), linkTarget(std::move(linkTarget_)),
          attributes(std::move(attributes_))
    {
    }
    std::string name;
    std::filesystem::path target;
    bool present = false;    // something was at the target: a file or a symbolic link
    std::string sha256;      // of the file (of the file a link names); "" when absent or dangling
    std::string linkTarget;  // non-empty: the target was a symbolic link with this text
    // A file's owner, mode and extended attributes (file_attributes.hpp), kept
    // by its backup copy and recorded in the manifest; nullopt for a link, an
    // absent member, or a set backed up by a version that did not record them
    // (restored then as before: root's, with the payload's configured mode).
    // Not part of the set's id: the same bytes with other attributes are the same set.
    std::optional<FileAttributes> attributes;

    bool isLink() const { return !linkTarget.empty(); }
    bool operator==(const SetMember&) const = default;
};

enum class SetHealth { Unknown, Healthy, Failed, Damaged };
const char* toString(SetHealth health);

struct BackupSet {
    std::string id;
    std::uint64_t createdUsec = 0;
    std::string version;
    std::vector<SetMember> members;
    std::filesystem::path dir;
    SetHealth health = SetHealth::Unknown;

    std::filesystem::path fileOf(const std::string& name) const { return dir / name; }
    const SetMember* member(const std::string& name) const;
    // The configured payloads this set has no member for (it was made under
    // another config): such a set is incomplete and never installed whole.
    std::vector<std::string> lacking(const std::vector<PayloadSpec>& payloads) const;
};

// The content id of a set: first 16 hex digits of SHA-256 over "name=sha256\n" lines in name order.
std::string setIdOf(const std::vector<SetMember>& members);

// What is at one payload's target now: a file (hashed), a symbolic link (its
// text, and the hash of the file it names), or nothing.
SetMember describeTarget(const PayloadSpec& payload);
// describeTarget of every payload.
std::vector<SetMember> describeInstalledSet(const std::vector<PayloadSpec>& payloads);
// True when `path` holds exactly what `member` records (the same link text,
// or a regular file with its SHA-256 and, when recorded, its attributes).
// Hashes a file: call it off the loop.
bool holdsMember(const std::filesystem::path& path, const SetMember& member);

class BackupStore {
public:
    explicit BackupStore(std::filesystem::path stateDir);

    struct BackUpResult {
        BackupSet set;
        bool created = false;  // false: the same set was already kept
    };
    // Copies the installed set in (temporary folder, fsync'ed files, then one
    // rename and an fsync of backups/). versionOf(engine file) names the
    // version; it is called only for a new set.
    BackUpResult backUp(const std::vector<PayloadSpec>& payloads, const std::function<std::string(const std::filesystem::path&)>& versionOf);

    std::vector<BackupSet> list() const;  // newest first; unreadable folders are skipped; from memory
    std::optional<BackupSet> find(const std::string& id) const;
    void remove(const std::string& id);
    // Keeps the `keep` newest sets; never removes `protectId`.
    void prune(unsigned keep, const std::string& protectId);
    // Adds the files of a set that is not installed any more (the set a failed
    // rollback left behind), so that both sets are kept. `files` pairs each
    // member with the file that holds it now (ignored for links and absent
    // members); each copy is checked against the member's SHA-256.
    BackupSet keepFiles(const std::vector<std::pair<SetMember, std::filesystem::path>>& files, const std::string& version);

    // Records what a check said of a set. Healthy stays healthy when a later
    // check fails (that failure may be the host's, not the set's: it passed
    // once); Damaged is cleared only when the set is backed up anew.
    void markHealth(const std::string& id, SetHealth health);
    SetHealth healthOf(const std::string& id) const;

    const std::filesystem::path& dir() const { return dir_; }

private:
    struct FolderStamp {
        bool exists = false;
        ino_t inode = 0;
        nlink_t links = 0;
        timespec mtime{};
        timespec ctime{};
        bool operator==(const FolderStamp& o) const;
    };
    FolderStamp stampOfFolder() const;
    std::vector<BackupSet> readFromDisk() const;
    // Runs a change, then re-reads the list (changes run off the loop, so
    // the loop's next list() needs no disk); forgets it if the change threw.
    template <typename Change>
    auto changing(Change change);
    void forget();
    BackUpResult backUpOnDisk(const std::vector<PayloadSpec>& payloads,
                                const std::function<std::string(const std::filesystem::path&)>& versionOf);
    void removeOnDisk(const std::string& id);
    BackupSet keepFilesOnDisk(const std::vector<std::pair<SetMember, std::filesystem::path>>& files, const std::string& version);
    void writeManifest(const BackupSet& set, const std::filesystem::path& folder) const;
    // Gives the copies of a kept set the attributes the installed files have now, where they differ.
    void refreshAttributes(BackupSet& set, const std::vector<SetMember>& installed) const;

    std::map<std::string, SetHealth> readHealth() const;
    void writeHealth(const std::map<std::string, SetHealth>& health) const;

    std::filesystem::path dir_;
    std::filesystem::path healthFile_;
    mutable std::mutex mutex_;
    mutable std::optional<std::vector<BackupSet>> cached_;  // empty: not read yet, or forgotten
    mutable FolderStamp stamp_;                             // of backups/ when cached_ was read
};

}  // namespace armdock
