#include "logging.hpp"

#include <unistd.h>

#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>
#include <string_view>
#include <vector>

#include "config.hpp"

namespace armdock {

namespace {

constexpr const char* loggerName = "armdock-agent";

struct ContextStore {
    std::mutex mutex;
    std::string transaction;
    std::string state;
};

ContextStore& contextStore()
{
    static ContextStore store;
    return store;
}

int journalPriority(spdlog::level::level_enum level)
{
    switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return LOG_DEBUG;
    case spdlog::level::info: return LOG_INFO;
    case spdlog::level::warn: return LOG_WARNING;
    case spdlog::level::err: return LOG_ERR;
    case spdlog::level::critical: return LOG_CRIT;
    default: return LOG_INFO;
    }
}

// Each entry with MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and, when set, the
// transaction and state it is about.
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        std::vector<std::string> fields;
        fields.push_back("MESSAGE=" + std::string(msg.payload.data(), msg.payload.size()));
        fields.push_back("PRIORITY=" + std::to_string(journalPriority(msg.level)));
        fields.push_back(std::string("SYSLOG_IDENTIFIER=") + loggerName);
        addContext(fields);
        send(fields);
    }

    void flush_() override {}

private:
    static void addContext(std::vector<std::string>& fields)
    {
        const std::string transaction = LogContext::transaction();
        const std::string state = LogContext::state();
        if (!transaction.empty())
            fields.push_back("ARMDOCK_TRANSACTION=" + transaction);
        if (!state.empty())
            fields.push_back("ARMDOCK_STATE=" + state);
    }

    static void send(const std::vector<std::string>& fields)
    {
        std::vector<iovec> iov;
        iov.reserve(fields.size());
        for (const auto& field : fields)
            iov.push_back(iovec{const_cast<char*>(field.data()), field.size()});
        sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    }
};

// Under systemd with a journal to write to: a unit of a manager without
// journald (a user manager in a test sandbox) logs to stderr instead.
bool underSystemd()
{
    const bool launchedBySystemd = std::getenv("JOURNAL_STREAM") != nullptr || std::getenv("INVOCATION_ID") != nullptr;
    return launchedBySystemd && ::access("/run/systemd/journal/socket", W_OK) == 0;
}

spdlog::sink_ptr makeSink()
{
    if (underSystemd())
        return std::make_shared<JournalSink>();
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-7l%$ %v");
    return sink;
}

spdlog::level::level_enum parseLevel(const std::string& level)
{
    if (level == "trace")
        return spdlog::level::trace;
    if (level == "debug")
        return spdlog::level::debug;
    if (level == "info")
        return spdlog::level::info;
    if (level == "warning" || level == "warn")
        return spdlog::level::warn;
    if (level == "error")
        return spdlog::level::err;
    throw ConfigError("unknown log level '" + level + "' (use trace, debug, info, warning or error)");
}

}  // namespace

void setUpLogging(const std::string& level)
{
    const auto parsed = parseLevel(level);
    auto logger = std::make_shared<spdlog::logger>(loggerName, makeSink());
    logger->set_level(parsed);
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
}

void setLogLevel(const std::string& level)
{
    spdlog::set_level(parseLevel(level));
}

void LogContext::set(const std::string& transaction, const std::string& state)
{
    auto& store = contextStore();
    std::lock_guard lock(store.mutex);
    store.transaction = transaction;
    store.state = state;
}

std::string LogContext::transaction()
{
    auto& store = contextStore();
    std::lock_guard lock(store.mutex);
    return store.transaction;
}

std::string LogContext::state()
{
    auto& store = contextStore();
    std::lock_guard lock(store.mutex);
    return store.state;
}

}  // namespace armdock
