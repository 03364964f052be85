// armdockctl's connection to io.armdock.Agent1: the proxy generated from
// daemon/io.armdock.Agent1.xml (plus org.freedesktop.DBus.Properties for
// PropertiesChanged) on one connection, driven by the project's
// AsioBusDriver on a Boost.Asio io_context. Signal handlers are installed
// when the link is made, so a caller that makes the link before calling
// Upgrade never misses a fast Finished. Method calls are synchronous (the
// generated proxy's); call kick() after one made outside a bus callback so
// that what arrived meanwhile is dispatched.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <boost/asio/io_context.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/vocabulary.hpp"
#include <vector>

#include "agent1_proxy.h"
#include "dbus/agent_names.hpp"
#include "dbus/asio_bus.hpp"
#include "dbus/sdbus_compat.hpp"

namespace armdock::cli {

using armdock::agentBusName;
using armdock::agentObjectPath;
static_assert(std::string_view(agentBusName) == io::armdock::Agent1_proxy::INTERFACE_NAME,
              "the bus name is the interface's name, as the XML spells it");

// The State and Progress properties as last seen: primed with one read,
// then kept up to date from each PropertiesChanged's values (so that every
// change is seen, also those that queued up behind a method call).
struct LiveProgress {
    std::string state;
    unsigned percent = 0;
    std::string message;
};

struct AgentEvents {
    std::function<void(const std::string& tx, const std::string& result, const std::string& message)> finished;
    std::function<void(const LiveProgress&)> changed;  // State or Progress changed
    std::function<void(bool onBus)> ownerChanged;  // the agent left (false) or came (true)
    std::function<void(bool healthy, const std::string& reason)> healthChanged;
};

class AgentProxy final : public sdbus::ProxyInterfaces<io::armdock::Agent1_proxy, sdbus::Properties_proxy> {
public:
    AgentProxy(sdbus::IConnection& connection, AgentEvents& events);
    ~AgentProxy();

    // A snapshot of the properties (one getter each).
    struct Snapshot {
        std::string state;
        unsigned percent = 0;
        std::string message;
        std::string transaction;
        std::string currentVersion;
        std::string lastResult;
        std::string lastError;
        bool healthy = true;
        std::uint64_t lastHealthCheckUsec = 0;
        std::uint32_t engineRestarts = 0;
        // A word this armdockctl does not know (a newer agent's) counts as running.
        bool running() const
        {
            const auto known = fromString<AgentState>(state);
            return !known || (*known != AgentState::Idle && *known != AgentState::Failed);
        }
    };
    Snapshot snapshot();
    // Reads State and Progress into live(); call before the method call whose changes are followed.
    void primeLive();
    const LiveProgress& live() const { return live_; }

private:
    void onFinished(const std::string& transaction, const std::string& result, const std::string& message) override;
    void onHealthChanged(const bool& healthy, const std::string& reason) override;
    void onPropertiesChanged(const compat::InterfaceName& interfaceName,
                             const std::map<compat::PropertyName, sdbus::Variant>& changed,
                             const std::vector<compat::PropertyName>& invalidated) override;

    AgentEvents& events_;
    LiveProgress live_;
};

class AgentLink {
public:
    // Connects to `busSetting` ("system", "user" or an address) and installs
    // the signal handlers. Throws CliError(exitNotRunning) when the bus is not there.
    explicit AgentLink(const std::string& busSetting);
    ~AgentLink();

    AgentProxy& agent() { return *proxy_; }
    AgentEvents& events() { return events_; }
    boost::asio::io_context& io() { return io_; }
    const std::string& busSetting() const { return busSetting_; }
    void kick() { driver_->kick(); }

    // Runs fn, turning a D-Bus error into a CliError with the agent's message.
    template <typename F>
    std::invoke_result_t<F&, AgentProxy&> call(F&& fn);

    // Runs the loop until stop() (or the bus fails: CliError(exitNotRunning)).
    void run();
    void stop() { io_.stop(); }

private:
    std::string busSetting_;
    AgentEvents events_;
    std::unique_ptr<sdbus::IConnection> connection_;  // before io_: outlives the loop's handlers
    boost::asio::io_context io_;
    std::unique_ptr<AsioBusDriver> driver_;
    std::unique_ptr<AgentProxy> proxy_;
    sdbus::Slot ownerMatch_;
};

[[noreturn]] void throwFromDbus(const sdbus::Error& e, const std::string& busSetting);

template <typename F>
std::invoke_result_t<F&, AgentProxy&> AgentLink::call(F&& fn)
{
    try {
        if constexpr (std::is_void_v<std::invoke_result_t<F&, AgentProxy&>>) {
            fn(*proxy_);
            kick();
        } else {
            auto result = fn(*proxy_);
            kick();
            return result;
        }
    } catch (const sdbus::Error& e) {
        throwFromDbus(e, busSetting_);
    }
}

}  // namespace armdock::cli
