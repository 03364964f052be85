#include "systemd/systemd_units.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "dbus/sdbus_compat.hpp"

namespace armdock {

namespace asio = boost::asio;

namespace {

const std::string systemdService = "org.freedesktop.systemd1";
const std::string managerPath = "/org/freedesktop/systemd1";
const std::string managerInterface = "org.freedesktop.systemd1.Manager";
const std::string propertiesInterface = "org.freedesktop.DBus.Properties";
const std::string unitInterface = "org.freedesktop.systemd1.Unit";
const std::string serviceInterface = "org.freedesktop.systemd1.Service";

// JobRemoved signals for jobs whose StartUnit/StopUnit reply has not been
// handled yet are kept this long (and at most this many).
constexpr auto earlyResultLifetime = std::chrono::seconds(60);
constexpr std::size_t maxEarlyResults = 256;
// The job call's own D-Bus timeout runs this much past our deadline, so the
// deadline (result "timeout") always fires first.
constexpr auto replyMargin = std::chrono::seconds(5);

// Completes an awaitable at most once, by posting to the awaiting
// coroutine's executor (never inside the sdbus callback that calls it).
template <typename T>
using Complete = std::function<void(std::exception_ptr, T)>;

template <typename T, typename Start>
Task<T> awaitCompletion(Start start)
{
    return asio::async_initiate<decltype(asio::use_awaitable), void(std::exception_ptr, T)>(
        [start = std::move(start)](auto handler) mutable {
            using Handler = decltype(handler);
            auto executor = asio::get_associated_executor(handler);
            auto slot = std::make_shared<std::optional<Handler>>(std::move(handler));
            Complete<T> complete = [slot, executor](std::exception_ptr error, T value) {
                if (!*slot)
                    return;
                asio::post(executor, [h = std::move(**slot), error, value = std::move(value)]() mutable {
                    std::move(h)(error, std::move(value));
                });
                slot->reset();
            };
            try {
                start(complete);
            } catch (...) {
                complete(std::current_exception(), T{});
            }
        },
        asio::use_awaitable);
}

template <typename T>
void fail(const Complete<T>& complete, const UnitJobFailed& error)
{
    complete(std::make_exception_ptr(error), T{});
}

std::string verbOf(const std::string& method)
{
    if (method == "StopUnit")
        return "stop";
    if (method == "StartUnit")
        return "start";
    if (method == "RestartUnit")
        return "restart";
    return method;
}

std::string whereToLook(const std::string& unit)
{
    return fmt::format("see `journalctl -u {0}` and `systemctl status {0}`", unit);
}

UnitJobFailed jobFailed(const std::string& verb, const std::string& unit, const std::string& result)
{
    return UnitJobFailed(unit, result, fmt::format("systemd could not {} {}: job result '{}'; {}", verb, unit, result,
                                                   whereToLook(unit)));
}

UnitJobFailed jobTimedOut(const std::string& verb, const std::string& unit, std::chrono::milliseconds timeout)
{
    return UnitJobFailed(unit, "timeout", fmt::format("systemd did not {} {} within {} s; {}", verb, unit,
                                                      timeout.count() / 1000.0, whereToLook(unit)));
}

UnitJobFailed stopTimedOutAfterKill(const std::string& unit, std::chrono::milliseconds timeout,
                                    std::chrono::milliseconds killWait)
{
    return UnitJobFailed(unit, "timeout",
                         fmt::format("systemd did not stop {0} within {1} s, nor within {2} s after SIGKILL was sent to all "
                                     "its processes; see `systemctl status {0}` and `journalctl -u {0}`",
                                     unit, timeout.count() / 1000.0, killWait.count() / 1000.0));
}

UnitJobFailed callFailed(const std::string& what, const std::string& unit, const sdbus::Error& error)
{
    return UnitJobFailed(unit, error.getName(),
                         fmt::format("systemd refused to {} {}: {}: {}", what, unit, error.getName(), error.getMessage()));
}

// One StopUnit/StartUnit/RestartUnit call waiting for its job to end.
struct JobWait {
    std::string verb;
    std::string unit;
    std::chrono::milliseconds timeout{};
    JobMode mode = JobMode::Replace;
    Complete<bool> complete;
    std::string jobPath;  // known once the method replied
    sdbus::PendingAsyncCall call;
    std::optional<asio::steady_timer> deadline;
    bool killed = false;  // a stop past its deadline: KillUnit sent, waiting killWait more
    bool finished = false;
};

struct EarlyResult {
    std::string result;
    std::chrono::steady_clock::time_point at;
};

}  // namespace

struct SystemdUnits::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io, sdbus::IConnection& connection, AsioBusDriver& driver, std::chrono::milliseconds killWait)
        : io(io), connection(connection), driver(driver), killWait(killWait)
    {
    }

    void subscribe();
    void onJobRemoved(const std::string& jobPath, const std::string& unit, const std::string& result);
    void keepEarlyResult(const std::string& jobPath, const std::string& result);

    // Coroutines take their arguments by value: the frame keeps its own copy.
    // (and hold the Impl, which may go before they first run).
    static Task<void> runJob(std::shared_ptr<Impl> self, std::string method, std::string unit,
                             std::chrono::milliseconds timeout);
    static Task<void> runJobs(std::shared_ptr<Impl> self, std::string method, std::vector<std::string> units,
                              std::chrono::milliseconds timeout, JobMode mode);
    void startJob(const std::string& method, const std::shared_ptr<JobWait>& wait);
    void callJobMethod(const std::string& method, const std::shared_ptr<JobWait>& wait);
    void armDeadline(const std::shared_ptr<JobWait>& wait, std::chrono::milliseconds after);
    void onDeadline(const std::shared_ptr<JobWait>& wait);
    void killUnit(const std::shared_ptr<JobWait>& wait);
    void onJobQueued(const std::shared_ptr<JobWait>& wait, const std::string& jobPath);
    void finishJob(const std::shared_ptr<JobWait>& wait, const std::string& result);
    void failJob(const std::shared_ptr<JobWait>& wait, const UnitJobFailed& error);

    Task<std::string> loadUnit(std::string unit);
    Task<sdbus::Variant> getProperty(std::string unit, std::string path, std::string interface, std::string name);
    sdbus::IProxy& unitProxy(const std::string& path);
    template <typename T>
    static Task<T> readProperty(std::shared_ptr<Impl> self, std::string unit, std::string interface, std::string name);

    asio::io_context& io;
    sdbus::IConnection& connection;
    AsioBusDriver& driver;
    const std::chrono::milliseconds killWait;
    std::unique_ptr<sdbus::IProxy> manager;
    std::map<std::string, std::unique_ptr<sdbus::IProxy>> unitProxies;  // by unit object path
    std::map<std::string, std::shared_ptr<JobWait>> waiting;            // by job path
    std::map<std::string, EarlyResult> early;                           // by job path
    unsigned repliesPending = 0;
};

void SystemdUnits::Impl::subscribe()
{
    manager = compat::makeProxy(connection, systemdService, managerPath);
    std::weak_ptr<Impl> weak = weak_from_this();
    manager->uponSignal(compat::SignalName{"JobRemoved"})
        .onInterface(compat::InterfaceName{managerInterface})
        .call([weak](std::uint32_t, const sdbus::ObjectPath& job, const std::string& unit, const std::string& result) {
            if (auto self = weak.lock())
                self->onJobRemoved(job, unit, result);
        });
    compat::finishProxyRegistration(*manager);
    // Sent before any job call on this connection, so systemd handles it first.
    auto pending = manager->callMethodAsync(compat::MethodName{"Subscribe"})
                       .onInterface(compat::InterfaceName{managerInterface})
                       .uponReplyInvoke([](compat::ReplyError error) {
                           if (auto* e = compat::errorOf(error))
                               spdlog::error("systemd Subscribe failed ({}: {}): unit jobs will time out",
                                             e->getName(), e->getMessage());
                       });
    (void)pending;
    driver.kick();
}

void SystemdUnits::Impl::onJobRemoved(const std::string& jobPath, const std::string& unit, const std::string& result)
{
    auto found = waiting.find(jobPath);
    if (found != waiting.end()) {
        spdlog::debug("job {} for {} removed: {}", jobPath, unit, result);
        const auto wait = found->second;  // a copy: finishing erases the map's
        finishJob(wait, result);
        return;
    }
    if (repliesPending > 0)
        keepEarlyResult(jobPath, result);
}

void SystemdUnits::Impl::keepEarlyResult(const std::string& jobPath, const std::string& result)
{
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(early, [now](const auto& entry) { return now - entry.second.at > earlyResultLifetime; });
    if (early.size() >= maxEarlyResults)
        early.erase(early.begin());
    early[jobPath] = EarlyResult{result, now};
}

Task<void> SystemdUnits::Impl::runJob(std::shared_ptr<Impl> self, std::string method, std::string unit,
                                      std::chrono::milliseconds timeout)
{
    auto wait = std::make_shared<JobWait>();
    wait->verb = verbOf(method);
    wait->unit = unit;
    wait->timeout = timeout;
    auto start = [self, method, wait](Complete<bool> complete) {
        wait->complete = std::move(complete);
        self->startJob(method, wait);
    };
    auto done = awaitCompletion<bool>(std::move(start));  // GCC 12: no lambda temporaries in a co_await
    co_await std::move(done);
}

// Every call is sent before any JobRemoved is awaited, so systemd runs the
// jobs together (a job's wait costs a bus round trip: two in a row made the
// upgrade's downtime longer than `systemctl start A B`). The calls leave in
// the list's order, and systemd handles them in that order.
Task<void> SystemdUnits::Impl::runJobs(std::shared_ptr<Impl> self, std::string method, std::vector<std::string> units,
                                       std::chrono::milliseconds timeout, JobMode mode)
{
    struct Batch {
        std::vector<std::exception_ptr> errors;
        std::size_t left = 0;
        Complete<bool> complete;
    };
    auto start = [self, method, units, timeout, mode](Complete<bool> complete) {
        auto batch = std::make_shared<Batch>();
        batch->errors.resize(units.size());
        batch->left = units.size();
        batch->complete = std::move(complete);
        if (units.empty()) {
            batch->complete(nullptr, true);
            return;
        }
        for (std::size_t i = 0; i < units.size(); ++i) {
            auto wait = std::make_shared<JobWait>();
            wait->verb = verbOf(method);
            wait->unit = units[i];
            wait->timeout = timeout;
            wait->mode = mode;
            wait->complete = [batch, i](std::exception_ptr error, bool) {
                batch->errors[i] = error;
                if (--batch->left > 0)
                    return;
                for (const auto& e : batch->errors)
                    if (e) {
                        batch->complete(e, false);  // the first unit in the list that failed
                        return;
                    }
                batch->complete(nullptr, true);
            };
            self->startJob(method, wait);
        }
    };
    auto done = awaitCompletion<bool>(std::move(start));  // GCC 12: no lambda temporaries in a co_await
    co_await std::move(done);
}

void SystemdUnits::Impl::startJob(const std::string& method, const std::shared_ptr<JobWait>& wait)
{
    armDeadline(wait, wait->timeout);
    try {
        callJobMethod(method, wait);
    } catch (const sdbus::Error& e) {  // the call could not even be sent
        failJob(wait, callFailed(wait->verb, wait->unit, e));
    }
}

void SystemdUnits::Impl::callJobMethod(const std::string& method, const std::shared_ptr<JobWait>& wait)
{
    std::weak_ptr<Impl> weak = weak_from_this();
    wait->call = manager->callMethodAsync(compat::MethodName{method})
                     .onInterface(compat::InterfaceName{managerInterface})
                     .withTimeout(wait->timeout + (wait->verb == "stop" ? killWait : std::chrono::milliseconds(0)) +
                                  replyMargin)
                     .withArguments(wait->unit, std::string(str(wait->mode)))
                     .uponReplyInvoke([weak, wait](compat::ReplyError error, const sdbus::ObjectPath& job) {
                         auto self = weak.lock();
                         if (!self)
                             return;
                         wait->call = {};  // cancelling a call inside its own callback frees the callback
                         --self->repliesPending;
                         if (auto* e = compat::errorOf(error))
                             self->failJob(wait, callFailed(wait->verb, wait->unit, *e));
                         else
                             self->onJobQueued(wait, job);
                     });
    ++repliesPending;
    driver.kick();
}

void SystemdUnits::Impl::armDeadline(const std::shared_ptr<JobWait>& wait, std::chrono::milliseconds after)
{
    if (!wait->deadline)
        wait->deadline.emplace(io);
    wait->deadline->expires_after(after);
    std::weak_ptr<JobWait> weakWait = wait;
    std::weak_ptr<Impl> weak = weak_from_this();
    wait->deadline->async_wait([weak, weakWait](const boost::system::error_code& ec) {
        auto self = weak.lock();
        auto wait = weakWait.lock();
        if (ec || !self || !wait)
            return;
        self->onDeadline(wait);
    });
}

// A stop that outlives the agent's timeout is a hung process (one that
// ignores SIGTERM waits for the unit's TimeoutStopSec, often longer): kill
// every process of the unit and give the same job killWait more to end.
void SystemdUnits::Impl::onDeadline(const std::shared_ptr<JobWait>& wait)
{
    if (wait->finished)
        return;
    if (wait->verb == "stop" && !wait->killed) {
        wait->killed = true;
        spdlog::warn("{} did not stop within {} s: sending SIGKILL to all its processes (KillUnit) and waiting up to "
                     "{} s more for its stop job",
                     wait->unit, wait->timeout.count() / 1000.0, killWait.count() / 1000.0);
        killUnit(wait);
        armDeadline(wait, killWait);
        return;
    }
    if (wait->jobPath.empty())
        --repliesPending;  // the reply will be dropped with the call
    failJob(wait, wait->killed ? stopTimedOutAfterKill(wait->unit, wait->timeout, killWait)
                               : jobTimedOut(wait->verb, wait->unit, wait->timeout));
}

void SystemdUnits::Impl::killUnit(const std::shared_ptr<JobWait>& wait)
{
    const std::string unit = wait->unit;
    try {
        auto pending = manager->callMethodAsync(compat::MethodName{"KillUnit"})
                           .onInterface(compat::InterfaceName{managerInterface})
                           .withArguments(unit, std::string("all"), std::int32_t{SIGKILL})
                           .uponReplyInvoke([unit](compat::ReplyError error) {
                               if (auto* e = compat::errorOf(error))
                                   spdlog::error("KillUnit {} failed ({}: {}); still waiting for its stop job", unit,
                                                 e->getName(), e->getMessage());
                           });
        (void)pending;
        driver.kick();
    } catch (const sdbus::Error& e) {
        spdlog::error("cannot send KillUnit for {} ({}: {}); still waiting for its stop job", unit, e.getName(),
                      e.getMessage());
    }
}

void SystemdUnits::Impl::onJobQueued(const std::shared_ptr<JobWait>& wait, const std::string& jobPath)
{
    if (wait->finished)
        return;
    wait->jobPath = jobPath;
    spdlog::debug("{} {}: job {}", wait->verb, wait->unit, jobPath);
    auto found = early.find(jobPath);
    if (found != early.end()) {
        const std::string result = found->second.result;
        early.erase(found);
        finishJob(wait, result);
        return;
    }
    waiting[jobPath] = wait;
}

void SystemdUnits::Impl::finishJob(const std::shared_ptr<JobWait>& wait, const std::string& result)
{
    if (result != "done") {
        failJob(wait, jobFailed(wait->verb, wait->unit, result));
        return;
    }
    if (wait->finished)
        return;
    wait->finished = true;
    waiting.erase(wait->jobPath);
    wait->deadline->cancel();
    wait->complete(nullptr, true);
}

void SystemdUnits::Impl::failJob(const std::shared_ptr<JobWait>& wait, const UnitJobFailed& error)
{
    if (wait->finished)
        return;
    wait->finished = true;
    if (!wait->jobPath.empty())
        waiting.erase(wait->jobPath);
    wait->call.cancel();
    wait->deadline->cancel();
    fail(wait->complete, error);
}

Task<std::string> SystemdUnits::Impl::loadUnit(std::string unit)
{
    auto self = shared_from_this();
    auto start = [self, unit](Complete<sdbus::ObjectPath> complete) {
        auto pending = self->manager->callMethodAsync(compat::MethodName{"LoadUnit"})
                           .onInterface(compat::InterfaceName{managerInterface})
                           .withArguments(unit)
                           .uponReplyInvoke([unit, complete](compat::ReplyError error, const sdbus::ObjectPath& path) {
                               if (auto* e = compat::errorOf(error))
                                   fail(complete, callFailed("load", unit, *e));
                               else
                                   complete(nullptr, path);
                           });
        (void)pending;
        self->driver.kick();
    };
    auto loaded = awaitCompletion<sdbus::ObjectPath>(std::move(start));
    const sdbus::ObjectPath path = co_await std::move(loaded);
    co_return std::string(path);
}

sdbus::IProxy& SystemdUnits::Impl::unitProxy(const std::string& path)
{
    auto& proxy = unitProxies[path];
    if (!proxy) {
        proxy = compat::makeProxy(connection, systemdService, path);
        compat::finishProxyRegistration(*proxy);
    }
    return *proxy;
}

Task<sdbus::Variant> SystemdUnits::Impl::getProperty(std::string unit, std::string path, std::string interface,
                                                     std::string name)
{
    auto self = shared_from_this();
    auto start = [self, unit, path, interface, name](Complete<sdbus::Variant> complete) {
            auto pending = self->unitProxy(path)
                               .callMethodAsync(compat::MethodName{"Get"})
                               .onInterface(compat::InterfaceName{propertiesInterface})
                               .withArguments(interface, name)
                               .uponReplyInvoke([unit, name, complete](compat::ReplyError error, const sdbus::Variant& value) {
                                   if (auto* e = compat::errorOf(error))
                                       fail(complete, callFailed("read " + name + " of", unit, *e));
                                   else
                                       complete(nullptr, value);
                               });
            (void)pending;
            self->driver.kick();
    };
    auto value = awaitCompletion<sdbus::Variant>(std::move(start));
    co_return co_await std::move(value);
}

template <typename T>
Task<T> SystemdUnits::Impl::readProperty(std::shared_ptr<Impl> self, std::string unit, std::string interface,
                                         std::string name)
{
    auto load = self->loadUnit(unit);  // GCC 12: no temporaries in a co_await
    const std::string path = co_await std::move(load);
    auto get = self->getProperty(unit, path, interface, name);
    const sdbus::Variant value = co_await std::move(get);
    co_return value.get<T>();
}

SystemdUnits::SystemdUnits(asio::io_context& io, sdbus::IConnection& connection, AsioBusDriver& driver,
                           std::chrono::milliseconds killWait)
    : impl_(std::make_shared<Impl>(io, connection, driver, killWait))
{
    impl_->subscribe();
}

SystemdUnits::~SystemdUnits() = default;

// These are not coroutines: they copy their arguments into the coroutine
// frames now, so a caller may pass temporaries and co_spawn the task later
// (asio's awaitables start lazily).
Task<void> SystemdUnits::stopUnit(const std::string& unit, std::chrono::milliseconds timeout)
{
    return Impl::runJob(impl_, "StopUnit", unit, timeout);
}

Task<void> SystemdUnits::startUnit(const std::string& unit, std::chrono::milliseconds timeout)
{
    return Impl::runJob(impl_, "StartUnit", unit, timeout);
}

Task<void> SystemdUnits::restartUnit(const std::string& unit, std::chrono::milliseconds timeout)
{
    return Impl::runJob(impl_, "RestartUnit", unit, timeout);
}

Task<void> SystemdUnits::startUnits(std::vector<std::string> units, std::chrono::milliseconds timeout)
{
    return Impl::runJobs(impl_, "StartUnit", std::move(units), timeout, JobMode::Replace);
}

Task<void> SystemdUnits::stopUnits(std::vector<std::string> units, std::chrono::milliseconds timeout)
{
    return Impl::runJobs(impl_, "StopUnit", std::move(units), timeout, JobMode::Replace);
}

Task<void> SystemdUnits::restartUnits(std::vector<std::string> units, std::chrono::milliseconds timeout, JobMode mode)
{
    return Impl::runJobs(impl_, "RestartUnit", std::move(units), timeout, mode);
}

Task<std::vector<std::string>> SystemdUnits::partOf(const std::string& unit)
{
    return Impl::readProperty<std::vector<std::string>>(impl_, unit, unitInterface, "PartOf");
}

Task<std::string> SystemdUnits::activeState(const std::string& unit)
{
    return Impl::readProperty<std::string>(impl_, unit, unitInterface, "ActiveState");
}

Task<std::uint32_t> SystemdUnits::mainPid(const std::string& unit)
{
    return Impl::readProperty<std::uint32_t>(impl_, unit, serviceInterface, "MainPID");
}

}  // namespace armdock
