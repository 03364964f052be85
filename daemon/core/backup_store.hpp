// Backups of whole engine sets in <state_dir>/backups/<id>/: one file per
// payload plus manifest.json. A set's id is derived from its content (the
// SHA-256 of every payload), so each distinct set is kept once; backing up a
// set that is already there only refreshes its time. All methods do file I/O:
// call them off the event loop, except list()/find(), which read only the
// small manifests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"

namespace armdock {

struct SetMember {
    std::string name;
    std::filesystem::path target;
    bool present = false;  // the target existed
    std::string sha256;    // "" when absent
};

struct BackupSet {
    std::string id;
    std::uint64_t createdUsec = 0;
    std::string version;
    std::vector<SetMember> members;
    std::filesystem::path dir;

    std::filesystem::path fileOf(const std::string& name) const { return dir / name; }
    const SetMember* member(const std::string& name) const;
};

// The content id of a set: first 16 hex digits of SHA-256 over "name=sha256\n" lines in name order.
std::string setIdOf(const std::vector<SetMember>& members);

// Hashes what is installed at each payload's target now.
std::vector<SetMember> describeInstalledSet(const std::vector<PayloadSpec>& payloads);

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

    std::vector<BackupSet> list() const;  // newest first; unreadable folders are skipped
    std::optional<BackupSet> find(const std::string& id) const;
    void remove(const std::string& id);
    // Keeps the `keep` newest sets; never removes `protectId`.
    void prune(unsigned keep, const std::string& protectId);
    // Adds the files of a set that is not installed any more (the set a failed
    // rollback left behind), so that both sets are kept.
    BackupSet keepFiles(const std::vector<std::pair<SetMember, std::filesystem::path>>& files, const std::string& version);

    const std::filesystem::path& dir() const { return dir_; }

private:
    void writeManifest(const BackupSet& set, const std::filesystem::path& folder) const;
    std::filesystem::path dir_;
};

}  // namespace armdock
