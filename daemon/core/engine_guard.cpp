#include "engine_guard.hpp"

#include <algorithm>
#include <exception>
#include <string>
#include <system_error>
#include <thread>

#include "config.hpp"

namespace armdock {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

bool setIsWhole(const std::optional<JournalContents>& journal)
{
    using enum JournalStepKind;
    if (!journal || !journal->has(Stopping) || journal->has(Committed))
        return true;
    std::optional<JournalStepKind> last;
    for (const auto& s : journal->steps)
        if (s.step == Stopping || s.step == RollingBack || s.step == Swapped || s.step == Restored)
            last = s.step;
    return last == Swapped || last == Restored;
}

namespace {

constexpr const char* prefix = "armdock-agent --guard-engine: ";

struct Look {
    bool whole = true;
    std::string transaction;
    std::string step;  // the journal's last step
};

// A journal that cannot be read is warned about once and counts as whole.
Look look(const TransactionJournal& journal, std::ostream& err, bool& warned)
{
    std::optional<JournalContents> contents;
    try {
        contents = journal.load();
    } catch (const std::exception& e) {
        if (!warned)
            err << prefix << "warning: " << e.what() << "; taking the engine files on disk as a whole set" << std::endl;
        warned = true;
        return {};
    }
    if (setIsWhole(contents))
        return {};
    return {false, contents->begin.transaction, contents->lastStep()};
}

double secondsOf(std::chrono::milliseconds d) { return static_cast<double>(d.count()) / 1000.0; }

}  // namespace

int runEngineGuard(const EngineGuardOptions& options, std::ostream& err)
{
    std::error_code ec;
    if (!fs::exists(options.configFile, ec))
        return 0;  // no agent configured here: nothing to guard
    Config config;
    try {
        config = loadConfig(options.configFile);
    } catch (const std::exception& e) {
        err << prefix << "warning: " << e.what() << "; not checking the engine files before this start (check the file with "
            << "`armdock-agent --config " << options.configFile.string() << " --check-config`)" << std::endl;
        return 0;
    }
    const TransactionJournal journal(config.agent.stateDir);
    bool warned = false;
    Look now = look(journal, err, warned);
    if (now.whole)
        return 0;
    err << prefix << "the engine files are a mixed set: transaction " << now.transaction << " in " << journal.file().string()
        << " was interrupted at step '" << now.step << "'; " << config.docker.service << " waits up to "
        << secondsOf(options.timeout) << " s for armdock-agent to restore the set (`systemctl start armdock-agent` if it is "
        << "not running)" << std::endl;
    const auto deadline = Clock::now() + options.timeout;
    while (Clock::now() < deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        std::this_thread::sleep_for(std::clamp(left, std::chrono::milliseconds(0), options.poll));
        now = look(journal, err, warned);
        if (now.whole) {
            err << prefix << "the engine files are a whole set again; starting " << config.docker.service << std::endl;
            return 0;
        }
    }
    err << prefix << "the engine files are still a mixed set after " << secondsOf(options.timeout) << " s (transaction "
        << now.transaction << " in " << journal.file().string() << ", step '" << now.step << "'): not starting "
        << config.docker.service << ". Start armdock-agent (`systemctl start armdock-agent`; see `journalctl -u "
        << "armdock-agent`) so that it restores the set; it starts " << config.docker.service << " itself" << std::endl;
    return 1;
}

}  // namespace armdock
