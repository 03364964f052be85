// The one place where sdbus-c++ 1.2 (Debian 12) and 2.x (Debian 13, the
// static build) differ for the agent's glue. Code outside this header spells
// names the 2.x way (compat::ObjectPath{"..."}, compat::MethodName{"..."}),
// which are plain strings under 1.2, and goes through the functions below for
// connections, polling, caller credentials, proxies and reply errors. A 2.x
// build changes only this file.
#pragma once

#include "armdock_build_config.h"

#include <sdbus-c++/sdbus-c++.h>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace armdock::compat {

#if ARMDOCK_SDBUS_2

using ServiceName = sdbus::ServiceName;
using ObjectPath = sdbus::ObjectPath;
using InterfaceName = sdbus::InterfaceName;
using MethodName = sdbus::MethodName;
using SignalName = sdbus::SignalName;
using PropertyName = sdbus::PropertyName;
using ErrorName = sdbus::Error::Name;
// What an async reply handler receives as its first argument.
using ReplyError = std::optional<sdbus::Error>;

inline const sdbus::Error* errorOf(const ReplyError& error)
{
    return error ? &*error : nullptr;
}

inline std::unique_ptr<sdbus::IConnection> systemBus() { return sdbus::createSystemBusConnection(); }
inline std::unique_ptr<sdbus::IConnection> userBus() { return sdbus::createSessionBusConnection(); }

inline bool processOne(sdbus::IConnection& connection) { return connection.processPendingEvent(); }

#else  // sdbus-c++ 1.2

using ServiceName = std::string;
using ObjectPath = std::string;
using InterfaceName = std::string;
using MethodName = std::string;
using SignalName = std::string;
using PropertyName = std::string;
using ErrorName = std::string;
using ReplyError = const sdbus::Error*;

inline const sdbus::Error* errorOf(const ReplyError& error) { return error; }

inline std::unique_ptr<sdbus::IConnection> systemBus() { return sdbus::createSystemBusConnection(); }
inline std::unique_ptr<sdbus::IConnection> userBus() { return sdbus::createSessionBusConnection(); }

inline bool processOne(sdbus::IConnection& connection) { return connection.processPendingRequest(); }

#endif

inline std::unique_ptr<sdbus::IConnection> busAt(const std::string& address)
{
    return sdbus::createSessionBusConnectionWithAddress(address);
}

// What the bus asks to be woken for. `timeout` is absolute on CLOCK_MONOTONIC
// (std::nullopt: none). `eventFd` (2.x only, else -1) must be watched for
// POLLIN as well.
struct PollSpec {
    int fd = -1;
    short events = 0;
    std::optional<std::chrono::microseconds> timeout;
    int eventFd = -1;
};

// 2.x wakes its eventFd when an async call shortens the poll timeout (or
// leaves messages queued), so a driver watching it re-arms by itself; 1.2
// has no such fd and needs AsioBusDriver::kick() after a call made outside
// a bus callback.
inline constexpr bool callsWakeTheLoop = ARMDOCK_SDBUS_2 != 0;

inline PollSpec pollSpec(const sdbus::IConnection& connection)
{
    const auto data = connection.getEventLoopPollData();
    PollSpec spec;
    spec.fd = data.fd;
    spec.events = data.events;
#if ARMDOCK_SDBUS_2
    if (data.timeout != std::chrono::microseconds::max())
        spec.timeout = data.timeout;
    spec.eventFd = data.eventFd;
#else
    if (data.timeout_usec != UINT64_MAX)
        spec.timeout = std::chrono::microseconds(data.timeout_usec);
#endif
    return spec;
}

inline sdbus::Error makeError(const std::string& name, const std::string& message)
{
    return sdbus::Error(ErrorName{name}, message);
}

inline std::unique_ptr<sdbus::IProxy> makeProxy(sdbus::IConnection& connection, const std::string& destination,
                                                const std::string& path)
{
    return sdbus::createProxy(connection, ServiceName{destination}, ObjectPath{path});
}

// Members of a hand-made object (the tests' fake servers), registered the
// way each version wants: 1.2 registers each member at once and the object
// in finish(); 2.x collects them and adds one vtable per interface there.
//   compat::ObjectVTable vtable(*object);
//   vtable.onInterface("org.example.Foo").method("Echo", echo).signal<std::string>("Tick");
//   vtable.finish();
class ObjectVTable {
public:
    explicit ObjectVTable(sdbus::IObject& object) : object_(object) {}

    ObjectVTable& onInterface(const std::string& interface)
    {
        interface_ = interface;
        return *this;
    }

    template <typename Implementation>
    ObjectVTable& method(const std::string& name, Implementation&& implementation)
    {
#if ARMDOCK_SDBUS_2
        items_[interface_].push_back(
            sdbus::registerMethod(MethodName{name}).implementedAs(std::forward<Implementation>(implementation)));
#else
        object_.registerMethod(name).onInterface(interface_).implementedAs(std::forward<Implementation>(implementation));
#endif
        return *this;
    }

    template <typename... Args>
    ObjectVTable& signal(const std::string& name)
    {
#if ARMDOCK_SDBUS_2
        items_[interface_].push_back(sdbus::registerSignal(SignalName{name}).withParameters<Args...>());
#else
        object_.registerSignal(name).onInterface(interface_).withParameters<Args...>();
#endif
        return *this;
    }

    template <typename Getter>
    ObjectVTable& property(const std::string& name, Getter&& getter)
    {
#if ARMDOCK_SDBUS_2
        items_[interface_].push_back(sdbus::registerProperty(PropertyName{name}).withGetter(std::forward<Getter>(getter)));
#else
        object_.registerProperty(name).onInterface(interface_).withGetter(std::forward<Getter>(getter));
#endif
        return *this;
    }

    void finish()
    {
#if ARMDOCK_SDBUS_2
        for (auto& [interface, items] : items_)
            object_.addVTable(InterfaceName{interface}, std::move(items));
        items_.clear();
#else
        object_.finishRegistration();
#endif
    }

private:
    sdbus::IObject& object_;
    std::string interface_;
#if ARMDOCK_SDBUS_2
    std::map<std::string, std::vector<sdbus::VTableItem>> items_;
#endif
};

inline std::unique_ptr<sdbus::IObject> makeObject(sdbus::IConnection& connection, const std::string& path)
{
    return sdbus::createObject(connection, ObjectPath{path});
}

// A match rule on `connection` that stays installed while the returned slot
// lives (1.2's addMatch returns one by itself, 2.x's only when asked).
template <typename Handler>
inline sdbus::Slot addMatchSlot(sdbus::IConnection& connection, const std::string& rule, Handler&& handler)
{
#if ARMDOCK_SDBUS_2
    return connection.addMatch(rule, std::forward<Handler>(handler), sdbus::return_slot);
#else
    return connection.addMatch(rule, std::forward<Handler>(handler));
#endif
}

// After the signal handlers are installed: 1.2 subscribes here, 2.x did
// when each handler was installed.
inline void finishProxyRegistration([[maybe_unused]] sdbus::IProxy& proxy)
{
#if !ARMDOCK_SDBUS_2
    proxy.finishRegistration();
#endif
}

// Who sent the method call being handled right now (call only from inside
// an adaptor method, before it returns). The groups are not asked for when
// the caller is root. Throws sdbus::Error when the uid cannot be learned.
struct CallerCredentials {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::vector<gid_t> supplementaryGids;
};

inline CallerCredentials currentCaller(const sdbus::IObject& object)
{
#if ARMDOCK_SDBUS_2
    const sdbus::Message message = object.getCurrentlyProcessedMessage();
    const sdbus::Message* current = &message;
#else
    const sdbus::Message* current = object.getCurrentlyProcessedMessage();
#endif
    if (current == nullptr)
        throw sdbus::Error(ErrorName{"org.freedesktop.DBus.Error.Failed"}, "no message is being processed");
    CallerCredentials caller;
    caller.uid = current->getCredsUid();
    if (caller.uid == 0)
        return caller;  // root: groups do not matter
    caller.gid = current->getCredsGid();
    try {
        caller.supplementaryGids = current->getCredsSupplementaryGids();
    } catch (const sdbus::Error&) {
        // Neither the bus nor /proc told them: judge by uid and primary gid.
    }
    return caller;
}

// The unique bus name (":1.42") of the sender of the method call being
// handled; empty on a peer-to-peer connection.
inline std::string currentSender(const sdbus::IObject& object)
{
#if ARMDOCK_SDBUS_2
    const sdbus::Message message = object.getCurrentlyProcessedMessage();
    const char* sender = message.getSender();  // 2.x: nullptr when there is none
    return sender != nullptr ? sender : "";
#else
    const sdbus::Message* current = object.getCurrentlyProcessedMessage();
    return current != nullptr ? current->getSender() : std::string();  // 1.2: a std::string
#endif
}

}  // namespace armdock::compat
