/* A Docker engine that says READY=1 and then never accepts a connection on
 * the socket systemd passed (fd 3): the unit is active, /_ping never answers. */
#include <stdlib.h>

#include "engine_common.h"

int main(int argc, char** argv)
{
    if (engine_wants_version(argc, argv))
        return engine_print_version(ENGINE_VERSION, ENGINE_BUILD);
    if (engine_notify_ready() != 0)
        fprintf(stderr, "engine_silent: no NOTIFY_SOCKET, not telling anyone\n");
    for (;;)
        pause();
}
