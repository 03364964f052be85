#include "agent_link.hpp"

#include <iostream>

#include "dbus/sdbus_compat.hpp"
#include "exit_codes.hpp"

namespace armdock::cli {

AgentProxy::AgentProxy(sdbus::IConnection& connection, AgentEvents& events)
    : ProxyInterfaces(connection, compat::ServiceName{agentBusName}, compat::ObjectPath{agentObjectPath}), events_(events)
{
    registerProxy();
}

AgentProxy::~AgentProxy() { unregisterProxy(); }

AgentProxy::Snapshot AgentProxy::snapshot()
{
    Snapshot s;
    s.state = State();
    auto progress = Progress();
    s.percent = progress.get<0>();
    s.message = progress.get<1>();
    s.transaction = Transaction();
    s.currentVersion = CurrentVersion();
    s.lastResult = LastResult();
    s.lastError = LastError();
    s.healthy = Healthy();
    s.lastHealthCheckUsec = LastHealthCheck();
    s.engineRestarts = EngineRestarts();
    return s;
}

// Handlers run inside the bus dispatch: nothing may escape into sdbus-c++.
void AgentProxy::onHealthChanged(const bool& healthy, const std::string& reason)
{
    try {
        if (events_.healthChanged)
            events_.healthChanged(healthy, reason);
    } catch (const std::exception& e) {
        std::cerr << "armdockctl: " << e.what() << "\n";
    }
}

void AgentProxy::onFinished(const std::string& transaction, const std::string& result, const std::string& message)
{
    try {
        if (events_.finished)
            events_.finished(transaction, result, message);
    } catch (const std::exception& e) {
        std::cerr << "armdockctl: " << e.what() << "\n";
    }
}

void AgentProxy::primeLive()
{
    live_.state = State();
    const auto progress = Progress();
    live_.percent = progress.get<0>();
    live_.message = progress.get<1>();
}

void AgentProxy::onPropertiesChanged(const compat::InterfaceName& interfaceName,
                                     const std::map<compat::PropertyName, sdbus::Variant>& changed,
                                     const std::vector<compat::PropertyName>&)
{
    if (interfaceName != io::armdock::Agent1_proxy::INTERFACE_NAME)
        return;
    // The generated proxy has getters but no names; these two are the
    // <property name=...> of daemon/io.armdock.Agent1.xml. The values come
    // with the signal (EmitsChangedSignal=true): re-reading them would lose
    // the changes that queued up meanwhile.
    const auto state = changed.find(compat::PropertyName{"State"});
    const auto progress = changed.find(compat::PropertyName{"Progress"});
    if (state == changed.end() && progress == changed.end())
        return;
    try {
        if (state != changed.end())
            live_.state = state->second.get<std::string>();
        if (progress != changed.end()) {
            const auto value = progress->second.get<sdbus::Struct<uint32_t, std::string>>();
            live_.percent = value.get<0>();
            live_.message = value.get<1>();
        }
        if (events_.changed)
            events_.changed(live_);
    } catch (const std::exception& e) {
        std::cerr << "armdockctl: " << e.what() << "\n";
    }
}

void throwFromDbus(const sdbus::Error& e, const std::string& busSetting) { throw fromDbusError(e, busSetting); }

AgentLink::AgentLink(const std::string& busSetting) : busSetting_(busSetting)
{
    try {
        connection_ = openBusConnection(busSetting);
    } catch (const sdbus::Error& e) {
        throw CliError(exitNotRunning, "cannot connect to " +
                                           (busSetting == "system" || busSetting == "user" ? "the " + busSetting + " bus"
                                                                                           : "the bus at " + busSetting) +
                                           ": " + e.getMessage() + "; is armdock-agent running? Start it with: " +
                                           startHint(busSetting));
    }
    try {
        driver_ = std::make_unique<AsioBusDriver>(io_, *connection_);
        proxy_ = std::make_unique<AgentProxy>(*connection_, events_);
        // The bus daemon's own signal: the agent leaving or coming back.
        const std::string rule = std::string("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                                             "member='NameOwnerChanged',arg0='") + agentBusName + "'";
        ownerMatch_ = compat::addMatchSlot(*connection_, rule, [this](auto&& message) {  // Message& (1.2), Message (2.x)
            std::string name, oldOwner, newOwner;
            try {
                message >> name >> oldOwner >> newOwner;
                if (events_.ownerChanged)
                    events_.ownerChanged(!newOwner.empty());
            } catch (const std::exception& e) {
                std::cerr << "armdockctl: " << e.what() << "\n";
            }
        });
        kick();
    } catch (const sdbus::Error& e) {
        throwFromDbus(e, busSetting);
    }
}

AgentLink::~AgentLink() = default;

void AgentLink::run()
{
    try {
        io_.restart();
        io_.run();
    } catch (const sdbus::Error& e) {
        throw CliError(exitNotRunning, "lost the connection to the bus: " + e.getMessage());
    }
}

}  // namespace armdock::cli
