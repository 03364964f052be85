#include "systemd/service_lifecycle.hpp"

#include <boost/asio/co_spawn.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <csignal>

#include "armdock_build_config.h"

namespace armdock {

ServiceLifecycle::ServiceLifecycle(boost::asio::io_context& io, Agent& agent, ServiceNotifier& notifier,
                                   std::function<void()> goOnBus)
    : io_(io), agent_(agent), notifier_(notifier), goOnBus_(std::move(goOnBus)), stopSignals_(io, SIGTERM, SIGINT),
      reloadSignal_(io, SIGHUP), drainTimer_(io)
{
}

void ServiceLifecycle::start()
{
    waitForStop();
    // SIGHUP is armed once READY=1 is sent (startUp): one before then waits in
    // the signal_set instead of reloading before the bus name is taken.
    boost::asio::co_spawn(io_, startUp(), onException([this](const std::string& what) {
        spdlog::critical("start-up failed: {}", what);
        exitCode_ = 1;
        io_.stop();
    }));
}

Task<void> ServiceLifecycle::startUp()
{
    co_await agent_.startUp();
    goOnBus_();
    notifier_.ready();
    notifier_.startWatchdog();
    waitForReload();
    // On the bus and ready first: the recovery is a transaction clients
    // watch, and the start timeout never cuts it short.
    co_await agent_.recoverInterrupted();
    co_await agent_.warmUp();
    malloc_trim(0);  // what start-up freed goes back before the agent idles
    spdlog::info("armdock-agent {} ready on the {} bus; engine {}", ARMDOCK_VERSION, agent_.config().agent.bus,
                 agent_.status().currentVersion.empty() ? "not answering" : agent_.status().currentVersion);
}

void ServiceLifecycle::waitForStop()
{
    stopSignals_.async_wait([this](const boost::system::error_code& ec, int signal) {
        if (ec)
            return;
        notifier_.stopping();
        agent_.refuseNewTransactions();  // nothing new starts while the running one drains
        if (agent_.busy() && !draining_) {
            draining_ = true;
            spdlog::warn("signal {}: cancelling transaction {} before stopping; send it again to stop at once", signal,
                         agent_.status().transaction);
            agent_.cancel();
            stopWhenIdle();
            waitForStop();
            return;
        }
        spdlog::info("signal {}: stopping", signal);
        io_.stop();
    });
}

void ServiceLifecycle::stopWhenIdle()
{
    if (!agent_.busy()) {
        io_.stop();
        return;
    }
    drainTimer_.expires_after(std::chrono::milliseconds(20));
    drainTimer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec)
            stopWhenIdle();
    });
}

void ServiceLifecycle::waitForReload()
{
    reloadSignal_.async_wait([this](const boost::system::error_code& ec, int) {
        if (ec)
            return;
        notifier_.reloading();
        agent_.reload([this](const std::string& tx, std::exception_ptr error) {
            try {
                if (error)
                    std::rethrow_exception(error);
                spdlog::info("reload: {}", tx.empty() ? "nothing waits in the drop-in folder" : "upgrade " + tx + " started");
            } catch (const std::exception& e) {
                spdlog::error("reload: {}", e.what());
            }
            notifier_.ready();
        });
        waitForReload();
    });
}

}  // namespace armdock
