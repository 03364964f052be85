/* The real dockerd behind a launcher built for another machine.
 *
 * The agent accepts only engines for the machine it runs on. To prove the
 * aarch64 agent (under qemu) on the x86-64 test sandbox, packaging/
 * build-static.sh builds this file for aarch64, statically, and installs it
 * as the sandbox's engine (ARMDOCK_SANDBOX_ENGINE): systemd and the agent's
 * version check run it through binfmt_misc and qemu, and it replaces itself
 * with the real dockerd, which runs natively with the same PID and argv. The
 * native build compiles it too, so that it keeps building. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine_common.h"

int main(int argc, char** argv)
{
    (void)argc;
    static char real[] = REAL_DOCKERD;
    argv[0] = real;
    execv(real, argv);
    fprintf(stderr, "engine_launcher: cannot run %s: %s\n", real, strerror(errno));
    return 127;
}
