// The words the agent shows on the bus (State, LastResult, Finished) and
// writes in its journal, each an enum with one table: toString gives the
// word, fromString<E> reads one back (nullopt for a word it does not know).
// armdockctl and the tests read the bus through the same tables.
#pragma once

#include <fmt/format.h>

#include <array>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace armdock {

// The State property: what the agent does now.
enum class AgentState { Idle, Verifying, Staging, Stopping, Swapping, Starting, Checking, RollingBack, Failed };

// How a transaction ended (LastResult, Finished); None before the first one.
enum class TransactionResult { None, Success, Rejected, RolledBack, Failed, Cancelled };

enum class TransactionKind { Upgrade, Rollback };

// A journal line after "begin" (docs/design.md, "The journal").
enum class JournalStepKind { BackedUp, BackupNew, Stopping, Swap, Swapped, RollingBack, Restored, Committed };

template <typename E>
struct Words;  // the table of E: pairs of a value and its word

template <typename E>
using Word = std::pair<E, std::string_view>;

template <>
struct Words<AgentState> {
    using enum AgentState;
    static constexpr std::array<Word<AgentState>, 9> table{{{Idle, "idle"}, {Verifying, "verifying"}, {Staging, "staging"},
                                                            {Stopping, "stopping"}, {Swapping, "swapping"}, {Starting, "starting"},
                                                            {Checking, "checking"}, {RollingBack, "rolling-back"}, {Failed, "failed"}}};
};

template <>
struct Words<TransactionResult> {
    using enum TransactionResult;
    static constexpr std::array<Word<TransactionResult>, 6> table{{{None, "none"}, {Success, "success"}, {Rejected, "rejected"},
                                                                   {RolledBack, "rolled-back"}, {Failed, "failed"}, {Cancelled, "cancelled"}}};
};

template <>
struct Words<TransactionKind> {
    using enum TransactionKind;
    static constexpr std::array<Word<TransactionKind>, 2> table{{{Upgrade, "upgrade"}, {Rollback, "rollback"}}};
};

template <>
struct Words<JournalStepKind> {
    using enum JournalStepKind;
    static constexpr std::array<Word<JournalStepKind>, 8> table{{{BackedUp, "backed-up"}, {BackupNew, "backup-new"}, {Stopping, "stopping"},
                                                                 {Swap, "swap"}, {Swapped, "swapped"}, {RollingBack, "rolling-back"},
                                                                 {Restored, "restored"}, {Committed, "committed"}}};
};

template <typename E>
concept Worded = requires { Words<E>::table; };

template <Worded E>
constexpr std::string_view toString(E value)
{
    for (const auto& [e, word] : Words<E>::table)
        if (e == value)
            return word;
    return "unknown";
}

template <Worded E>
constexpr std::optional<E> fromString(std::string_view word)
{
    for (const auto& [e, w] : Words<E>::table)
        if (w == word)
            return e;
    return std::nullopt;
}

// For concatenation into messages.
template <Worded E>
std::string str(E value)
{
    return std::string(toString(value));
}

// For test output and streams.
template <Worded E>
std::ostream& operator<<(std::ostream& out, E value)
{
    return out << toString(value);
}

// Every value has a word and no word is used twice.
template <Worded E>
consteval bool tableIsWhole(std::size_t count)
{
    const auto& t = Words<E>::table;
    if (t.size() != count)
        return false;
    for (std::size_t i = 0; i < t.size(); ++i)
        for (std::size_t j = i + 1; j < t.size(); ++j)
            if (t[i].first == t[j].first || t[i].second == t[j].second)
                return false;
    return true;
}
static_assert(tableIsWhole<AgentState>(9));
static_assert(tableIsWhole<TransactionResult>(6));
static_assert(tableIsWhole<TransactionKind>(2));
static_assert(tableIsWhole<JournalStepKind>(8));

}  // namespace armdock

// For log lines and fmt::format: the word.
template <armdock::Worded E>
struct fmt::formatter<E> : fmt::formatter<std::string_view> {
    template <typename FormatContext>
    auto format(E value, FormatContext& ctx) const
    {
        return fmt::formatter<std::string_view>::format(armdock::toString(value), ctx);
    }
};
