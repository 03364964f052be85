// The transaction journal: one file in the state folder, one JSON object per
// line, each line fsync'ed before the step it announces takes effect. A
// restart after a crash reads it to decide the recovery
// (TransactionRunner::recover in transaction.cpp; the format and the crash
// rule in docs/design.md): no "backed-up" line -> nothing outside the staged
// files was touched; "backed-up" without "committed" -> restore the
// backed-up set.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "vocabulary.hpp"

namespace armdock {

struct JournalPayload {
    std::string name;
    std::filesystem::path target;
    std::filesystem::path staged;     // hidden temporary beside the target
    std::string newSha256;            // "" when the new set has no such file
};

struct JournalBegin {
    std::string transaction;
    TransactionKind kind = TransactionKind::Upgrade;
    std::vector<JournalPayload> payloads;
    // Drop-in files this transaction applies: after a crash, the recovery
    // removes them (committed) or moves them aside with its result, so they
    // are never applied twice.
    std::vector<std::filesystem::path> dropins;
};

struct JournalStep {
    // Swapped: every rename done; Restored: the backed-up set renamed back.
    JournalStepKind step;
    std::string detail;  // backup id for BackedUp/BackupNew, payload name for Swap
};

struct JournalContents {
    JournalBegin begin;
    std::vector<JournalStep> steps;

    bool has(JournalStepKind step) const;
    std::string detailOf(JournalStepKind step) const;  // detail of the last such step, "" if none
    std::string lastStep() const;                       // its word; "begin" when no step yet
};

class TransactionJournal {
public:
    explicit TransactionJournal(std::filesystem::path stateDir);
    ~TransactionJournal();
    TransactionJournal(const TransactionJournal&) = delete;
    TransactionJournal& operator=(const TransactionJournal&) = delete;

    const std::filesystem::path& file() const { return file_; }
    bool exists() const;

    // Creates the journal (fails if one exists: a transaction is pending) and
    // fsyncs it and the state folder.
    void begin(const JournalBegin& begin);
    // Appends one line and fsyncs it before returning.
    void record(JournalStepKind step, const std::string& detail = {});
    // Appends several lines in one write and one fsync. A crash during the
    // write can tear the last lines (load ignores a torn line), so use it
    // only for lines that announce steps taken after it returns.
    void recordAll(const std::vector<JournalStep>& steps);
    // Reads it back; a torn last line (crash while writing) is ignored, and
    // so is a step whose word this agent does not know.
    // nullopt when there is no journal; throws std::runtime_error naming the
    // file when its first line cannot be read.
    std::optional<JournalContents> load() const;
    // Removes it (and fsyncs the folder): the transaction is over.
    void clear();

private:
    std::filesystem::path file_;
    int fd_ = -1;
};

}  // namespace armdock
