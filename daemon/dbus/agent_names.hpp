// Where the agent is on the bus, in one place for the daemon, armdockctl, the
// tests and the benchmarks: the bus name is the interface's name (the
// generated adaptor's and proxy's INTERFACE_NAME, checked against it where
// they are compiled), the object path the interface XML's <node name>.
#pragma once

namespace armdock {

inline constexpr const char* agentBusName = "io.armdock.Agent1";
inline constexpr const char* agentInterfaceName = agentBusName;
inline constexpr const char* agentObjectPath = "/io/armdock/Agent1";

}  // namespace armdock
