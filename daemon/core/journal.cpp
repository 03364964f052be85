#include "journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <sstream>
#include <system_error>

#include "durable_fs.hpp"
#include "fd_io.hpp"

namespace armdock {

namespace {

// `error` defaults to errno as it is where the caller stands.
std::system_error journalError(const std::filesystem::path& file, const std::string& what, int error = errno)
{
    return std::system_error(error, std::generic_category(), what + " " + file.string());
}

// Appends the lines in one write and fsyncs once.
void appendLines(int fd, const std::filesystem::path& file, const std::vector<nlohmann::json>& lines)
{
    std::string text;
    for (const auto& line : lines)
        text += line.dump() + "\n";
    if (const int error = writeFully(fd, text.data(), text.size()))
        throw journalError(file, "cannot write transaction journal", error);
    // The lines must be on disk before the steps they announce take effect.
    fsyncFd(fd, file);
}

void appendLine(int fd, const std::filesystem::path& file, const nlohmann::json& line)
{
    appendLines(fd, file, {line});
}

}  // namespace

bool JournalContents::has(JournalStepKind step) const
{
    for (const auto& s : steps)
        if (s.step == step)
            return true;
    return false;
}

std::string JournalContents::detailOf(JournalStepKind step) const
{
    std::string detail;
    for (const auto& s : steps)
        if (s.step == step)
            detail = s.detail;
    return detail;
}

std::string JournalContents::lastStep() const
{
    return steps.empty() ? std::string("begin") : str(steps.back().step);
}

TransactionJournal::TransactionJournal(std::filesystem::path stateDir) : file_(std::move(stateDir) / "transaction.journal") {}

TransactionJournal::~TransactionJournal()
{
    if (fd_ >= 0)
        ::close(fd_);
}

bool TransactionJournal::exists() const
{
    std::error_code ec;
    return std::filesystem::exists(file_, ec);
}

void TransactionJournal::begin(const JournalBegin& begin)
{
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        throw journalError(file_, "cannot create transaction journal");
    fd_ = fd;
    nlohmann::json payloads = nlohmann::json::array();
    for (const auto& p : begin.payloads)
        payloads.push_back({{"name", p.name}, {"target", p.target.string()}, {"staged", p.staged.string()},
                            {"new_sha256", p.newSha256}});
    nlohmann::json dropins = nlohmann::json::array();
    for (const auto& d : begin.dropins)
        dropins.push_back(d.string());
    appendLine(fd_, file_, {{"step", "begin"}, {"transaction", begin.transaction}, {"kind", toString(begin.kind)}, {"payloads", payloads},
                            {"dropins", dropins}});
    // The journal's name must be durable too, or a crash could lose the file itself.
    fsyncDirectory(file_.parent_path());
}

void TransactionJournal::record(JournalStepKind step, const std::string& detail)
{
    recordAll({{step, detail}});
}

void TransactionJournal::recordAll(const std::vector<JournalStep>& steps)
{
    if (fd_ < 0) {
        fd_ = ::open(file_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd_ < 0)
            throw journalError(file_, "cannot open transaction journal");
    }
    std::vector<nlohmann::json> lines;
    for (const auto& s : steps)
        lines.push_back({{"step", toString(s.step)}, {"detail", s.detail}});
    appendLines(fd_, file_, lines);
}

std::optional<JournalContents> TransactionJournal::load() const
{
    if (!exists())
        return std::nullopt;
    std::istringstream in(readSmallFile(file_));
    std::string line;
    JournalContents contents;
    bool first = true;
    while (std::getline(in, line)) {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception&) {
            if (first)
                throw std::runtime_error("transaction journal " + file_.string() + " is unreadable; its first line is not JSON");
            break;  // torn last line: the step it announced never took effect
        }
        if (first) {
            contents.begin.transaction = j.value("transaction", "");
            contents.begin.kind = fromString<TransactionKind>(j.value("kind", "")).value_or(TransactionKind::Upgrade);
            for (const auto& p : j.value("payloads", nlohmann::json::array()))
                contents.begin.payloads.push_back(
                    {p.value("name", ""), p.value("target", ""), p.value("staged", ""), p.value("new_sha256", "")});
            for (const auto& d : j.value("dropins", nlohmann::json::array()))
                if (d.is_string())
                    contents.begin.dropins.emplace_back(d.get<std::string>());
            first = false;
        } else {
            if (auto step = fromString<JournalStepKind>(j.value("step", "")))
                contents.steps.push_back({*step, j.value("detail", "")});
        }
    }
    if (first)
        throw std::runtime_error("transaction journal " + file_.string() + " is empty");
    return contents;
}

void TransactionJournal::clear()
{
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    removeDurably(file_);
}

}  // namespace armdock
