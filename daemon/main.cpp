// armdock-agent: the command line (command_line.cpp), then the service
// (agent_service.cpp). The logic lives in core/, the glue in dbus/ and systemd/.
#include "agent_service.hpp"
#include "command_line.hpp"

int main(int argc, char** argv)
{
    using namespace armdock;
    tuneAllocator();
    CommandLine commandLine;
    Config config;
    if (int code = parseCommandLine(argc, argv, commandLine); code >= 0)
        return code;
    if (int code = prepareToRun(commandLine, config); code >= 0)
        return code;
    return runAgentService(config);
}
