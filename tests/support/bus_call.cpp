// armdock-bus-call: one call to io.armdock.Agent1, for tests that run it as
// another user (`setpriv --reuid=65534 ... armdock-bus-call ADDRESS WHAT`).
// Unlike busctl it prints the D-Bus error *name*, so a test can tell the
// bus's refusal (org.freedesktop.DBus.Error.AccessDenied) from the agent's
// (io.armdock.Agent1.Error.AccessDenied).
//
//   WHAT: Upgrade | UpgradeFds | Rollback | Release | Cancel | ListBackups | ListPayloads | ListPayloadPackages | Reload   the methods
//         (Upgrade asks for a file that does not exist, UpgradeFds passes /dev/null)
//         Get:NAME | GetAll | Introspect | Ping                 the open interfaces
//         Own                                                   request the agent's bus name
//
// Prints "ok VALUE" and exits 0, or "error NAME: MESSAGE" and exits 1;
// exits 2 on a usage error or when the bus cannot be reached.
#include <sdbus-c++/sdbus-c++.h>

#include <fcntl.h>

#include <cstdio>
#include <stdexcept>
#include <map>
#include <string>
#include <vector>

#include "dbus/agent_names.hpp"
#include "dbus/sdbus_compat.hpp"

namespace {

constexpr const char* agentInterface = armdock::agentInterfaceName;

std::string call(sdbus::IConnection& connection, sdbus::IProxy& proxy, const std::string& what)
{
    if (what == "Own") {
        connection.requestName(armdock::compat::ServiceName{armdock::agentBusName});
        return "owner of io.armdock.Agent1";
    }
    if (what == "Upgrade") {
        std::map<std::string, std::string> files{{"docker", "/nonexistent/armdock-bus-call/docker"}};
        std::map<std::string, sdbus::Variant> options;
        std::string tx;
        proxy.callMethod("Upgrade").onInterface(agentInterface).withArguments(files, options).storeResultsTo(tx);
        return tx;
    }
    if (what == "UpgradeFds") {
        const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            throw std::runtime_error("cannot open /dev/null");
        std::map<std::string, sdbus::UnixFd> files;
        files.emplace("docker", sdbus::UnixFd(fd, sdbus::adopt_fd));
        std::map<std::string, sdbus::Variant> options;
        std::string tx;
        proxy.callMethod("UpgradeFds").onInterface(agentInterface).withArguments(files, options).storeResultsTo(tx);
        return tx;
    }
    if (what == "Rollback" || what == "Release") {
        std::string tx;
        proxy.callMethod(what).onInterface(agentInterface).storeResultsTo(tx);
        return tx;
    }
    if (what == "Cancel" || what == "Reload") {
        proxy.callMethod(what).onInterface(agentInterface);
        return "done";
    }
    if (what == "ListBackups") {
        std::vector<sdbus::Struct<std::string, std::uint64_t, std::string>> backups;
        proxy.callMethod("ListBackups").onInterface(agentInterface).storeResultsTo(backups);
        return std::to_string(backups.size()) + " backups";
    }
    if (what == "ListPayloads") {
        std::vector<sdbus::Struct<std::string, std::string, bool, std::string, std::string>> payloads;
        proxy.callMethod("ListPayloads").onInterface(agentInterface).storeResultsTo(payloads);
        return std::to_string(payloads.size()) + " payloads";
    }
    if (what == "ListPayloadPackages") {
        std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string, bool, std::vector<std::string>>> payloads;
        std::vector<std::string> hostWarnings;
        proxy.callMethod("ListPayloadPackages").onInterface(agentInterface).storeResultsTo(payloads, hostWarnings);
        return std::to_string(payloads.size()) + " payloads";
    }
    if (what.starts_with("Get:")) {
        sdbus::Variant value = proxy.getProperty(what.substr(4)).onInterface(agentInterface);
        const std::string type = value.peekValueType();  // std::string in 1.2, const char* in 2.x
        return type == "s" ? value.get<std::string>() : type;
    }
    if (what == "GetAll") {
        std::map<std::string, sdbus::Variant> all;
        proxy.callMethod("GetAll").onInterface("org.freedesktop.DBus.Properties").withArguments(std::string(agentInterface)).storeResultsTo(all);
        return std::to_string(all.size()) + " properties";
    }
    if (what == "Introspect") {
        std::string xml;
        proxy.callMethod("Introspect").onInterface("org.freedesktop.DBus.Introspectable").storeResultsTo(xml);
        return xml.find("name=\"Upgrade\"") != std::string::npos ? "has Upgrade" : "no Upgrade";
    }
    if (what == "Ping") {
        proxy.callMethod("Ping").onInterface("org.freedesktop.DBus.Peer");
        return "pong";
    }
    throw std::invalid_argument("unknown call " + what);
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: armdock-bus-call ADDRESS WHAT\n");
        return 2;
    }
    std::unique_ptr<sdbus::IConnection> connection;
    std::unique_ptr<sdbus::IProxy> proxy;
    try {
        connection = armdock::compat::busAt(argv[1]);
        proxy = armdock::compat::makeProxy(*connection, armdock::agentBusName, armdock::agentObjectPath);
    } catch (const std::exception& e) {
        std::printf("cannot connect to %s: %s\n", argv[1], e.what());
        return 2;
    }
    try {
        std::printf("ok %s\n", call(*connection, *proxy, argv[2]).c_str());
        return 0;
    } catch (const sdbus::Error& e) {
        std::printf("error %s: %s\n", e.getName().c_str(), e.getMessage().c_str());
        return 1;
    } catch (const std::exception& e) {
        std::printf("%s\n", e.what());
        return 2;
    }
}
