// [agent] dpkg_owned = "divert": the diversions and holds the agent makes
// for the packaged targets it installs over, and their record.
//
// A diversion is made without dpkg-divert's --rename, which would take the
// packaged file away from its target until the swap (dpkg-divert renames it
// even over a hard link of itself): TARGET.distrib is first made a hard link
// of the packaged file, then the diversion is added. The target keeps its
// file throughout, so a crash at any point leaves an engine Docker can start.
//
// The record (STATE/dpkg-diversions.json, written durably before a
// diversion is made) says which diversions and holds the agent made. Whether
// one stays is decided by content (reconcileDiversions): it stays while the
// agent's own file is installed at its target, and goes once the packaged
// bytes are back there (a rollback, a refused or recovered upgrade,
// `armdockctl release`).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace armdock {

struct AgentDiversion {
    std::string payload;
    std::filesystem::path target;  // the payload's target
    std::string listedAs;          // the target as dpkg names it ("/usr/sbin/dockerd")
    std::string package;           // the package that owns it
    bool heldByAgent = false;      // the agent set the hold (the package was not held)
    std::string transaction;       // the upgrade that made it
    bool committed = false;        // in force when last reconciled (the agent's file is installed); for reading only
    bool operator==(const AgentDiversion&) const = default;
};

class DiversionRecord {
public:
    explicit DiversionRecord(std::filesystem::path file);
    // Every recorded diversion; none when the file does not exist. Throws
    // std::runtime_error naming the file when it cannot be read or parsed.
    std::vector<AgentDiversion> load() const;
    void save(const std::vector<AgentDiversion>& diversions) const;  // durably; removes the file when empty
    const std::filesystem::path& file() const { return file_; }

private:
    std::filesystem::path file_;
};

// Blocking (child processes, dpkg's lock): off the loop. Each throws
// std::runtime_error naming the command and what it said.
// Links TARGET.distrib to the packaged file (when absent), adds the local
// diversion (`dpkg-divert --root ROOT --local --no-rename --divert
// LISTED.distrib --add LISTED`) and, when heldByAgent, holds the package
// (`dpkg --root ROOT --set-selections`). Each step is idempotent.
void makeDiversion(const std::filesystem::path& root, const AgentDiversion& diversion);
// Removes the diversion (`--no-rename --remove`), TARGET.distrib when it
// holds the same bytes as the target or `distribGoes`, and the hold when the
// agent set it. Idempotent.
void undoDiversion(const std::filesystem::path& root, const AgentDiversion& diversion, bool distribGoes = false);

// The diversion's other name at the target: TARGET.distrib.
std::filesystem::path distribPath(const AgentDiversion& diversion);

// Brings the record and dpkg in line with what is installed, by content, at
// the end of every transaction (never while one is between its diversion and
// its swap): an entry whose diversion dpkg no longer has is dropped (and the
// agent's hold lifted); one whose target holds the packaged bytes again
// (TARGET.distrib's: a rollback, a refused or recovered upgrade, a release)
// is undone; one whose target holds other bytes is in force and kept.
// Returns what it did, a line each, for the log; throws std::runtime_error
// when the record cannot be read or written (an undo that fails keeps its
// entry and is said in the lines).
std::vector<std::string> reconcileDiversions(const std::filesystem::path& root, const DiversionRecord& record);

}  // namespace armdock
