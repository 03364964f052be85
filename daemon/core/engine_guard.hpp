// The guard Docker's unit runs before every start (ExecStartPre=armdock-agent
// --guard-engine, shipped as a drop-in): Docker must never start on a mixed
// set, e.g. at boot after a power loss in the middle of a swap, before the
// agent's recovery has restored the set.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <ostream>

#include "journal.hpp"

namespace armdock {

// Whether the engine files on disk form a whole set, judged from the journal
// alone: whole with no journal, before its "stopping", once "committed", or
// when the last of "stopping", "rolling-back", "swapped", "restored" is
// "swapped" or "restored". Mixed while a swap or a restore is announced and
// not finished.
bool setIsWhole(const std::optional<JournalContents>& journal);

struct EngineGuardOptions {
    std::filesystem::path configFile = "/etc/armdock/agent.toml";
    std::chrono::milliseconds timeout{75000};  // below Docker's usual start timeout (90 s)
    std::chrono::milliseconds poll{100};
};

// Returns the exit code: 0 when the set is whole (at once, or once the agent
// restored it), 1 when it is still mixed after the timeout. Cheap when whole:
// reads the config (for state_dir) and the journal, nothing else. A config
// that is missing means nothing to guard; one that cannot be read, and a
// journal whose first line cannot be read, are warned about on `err` and
// count as whole, so that a typo cannot keep Docker down. Every message is
// one line on `err` (Docker's journal).
int runEngineGuard(const EngineGuardOptions& options, std::ostream& err);

}  // namespace armdock
