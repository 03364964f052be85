/* A Docker engine whose "-v" lies: it prints 99.0.0 and otherwise runs the
 * real dockerd, whose GET /version reports the real version. */
#include <errno.h>
#include <stdlib.h>

#include "engine_common.h"

int main(int argc, char** argv)
{
    if (engine_wants_version(argc, argv))
        return engine_print_version("99.0.0", "fake");
    argv[0] = (char*)REAL_DOCKERD;
    execv(REAL_DOCKERD, argv);
    fprintf(stderr, "engine_wrong_version: exec %s: %s\n", REAL_DOCKERD, strerror(errno));
    return 127;
}
