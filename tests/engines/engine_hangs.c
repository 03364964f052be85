/* A hung Docker engine: says READY=1, ignores SIGTERM and never accepts a
 * connection on the socket systemd passed. The unit is active, /_ping never
 * answers, and a stop waits for TimeoutStopSec unless someone sends SIGKILL. */
#include <signal.h>
#include <stdlib.h>

#include "engine_common.h"

int main(int argc, char** argv)
{
    if (engine_wants_version(argc, argv))
        return engine_print_version(ENGINE_VERSION, ENGINE_BUILD);
    signal(SIGTERM, SIG_IGN);
    if (engine_notify_ready() != 0)
        fprintf(stderr, "engine_hangs: no NOTIFY_SOCKET, not telling anyone\n");
    for (;;)
        pause();
}
