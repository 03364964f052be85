#include "systemd/service_notifier.hpp"

#include <systemd/sd-daemon.h>

#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace armdock {

namespace {

void notify(const std::string& message)
{
    const int rc = sd_notify(0, message.c_str());
    if (rc < 0)
        spdlog::warn("sd_notify({}) failed: {}", message, std::strerror(-rc));
}

// One line: systemd shows STATUS= as is, a newline would cut it.
std::string oneLine(std::string text)
{
    for (char& c : text) {
        if (c == '\n' || c == '\r')
            c = ' ';
    }
    return text;
}

}  // namespace

std::string statusLine(const AgentStatus& status)
{
    if (status.state == AgentState::Idle) {
        if (status.lastResult == TransactionResult::None)
            return fmt::format("idle; engine {}", status.currentVersion.empty() ? "unknown" : status.currentVersion);
        return fmt::format("idle; engine {}; last transaction {}: {}",
                           status.currentVersion.empty() ? "unknown" : status.currentVersion, status.transaction,
                           status.lastResult);
    }
    return fmt::format("{} {} ({}%): {}", status.transaction, status.state, status.percent, status.message);
}

ServiceNotifier::ServiceNotifier(boost::asio::io_context& io) : timer_(io) {}

ServiceNotifier::~ServiceNotifier() = default;

void ServiceNotifier::ready()
{
    notify("READY=1");
}

void ServiceNotifier::status(const std::string& line)
{
    notify("STATUS=" + oneLine(line));
}

void ServiceNotifier::stopping()
{
    timer_.cancel();
    notify("STOPPING=1");
}

void ServiceNotifier::reloading()
{
    notify("RELOADING=1");
}

void ServiceNotifier::startWatchdog()
{
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return;
    interval_ = std::chrono::microseconds(usec / 4);
    spdlog::debug("feeding the systemd watchdog every {} ms", interval_.count() / 1000);
    notify("WATCHDOG=1");
    armWatchdog();
}

void ServiceNotifier::armWatchdog()
{
    timer_.expires_after(interval_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec)
            return;
        notify("WATCHDOG=1");
        armWatchdog();
    });
}

void ServiceNotifier::followStatus(const AgentStatus& status)
{
    followed_ = &status;
}

void ServiceNotifier::propertiesChanged(const std::vector<std::string>&)
{
    if (followed_ != nullptr)
        status(statusLine(*followed_));
}

void ServiceNotifier::finished(const std::string& transaction, TransactionResult result, const std::string& message)
{
    status(fmt::format("{} {}{}{}", transaction, result, message.empty() ? "" : ": ", message));
}

}  // namespace armdock
