/* The real dockerd, started without --live-restore whatever its unit says:
 * the new engine that stops the containers an engine with live-restore left
 * running. It replaces itself with /usr/sbin/dockerd (same PID), passing every
 * other argument on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_common.h"

int main(int argc, char** argv)
{
    static char real[] = REAL_DOCKERD;
    int kept = 0;
    argv[kept++] = real;
    for (int i = 1; i < argc; ++i)
        if (strcmp(argv[i], "--live-restore") != 0)
            argv[kept++] = argv[i];
    argv[kept] = NULL;
    execv(real, argv);
    fprintf(stderr, "engine_no_live_restore: cannot run %s: %s\n", real, strerror(errno));
    return 127;
}
