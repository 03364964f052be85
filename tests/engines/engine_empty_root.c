/* The real dockerd, started on an empty data root of its own: it answers,
 * reports the right version and passes every check but one: the containers
 * that ran under the old engine are not there. Every argument is passed on,
 * except that --data-root=DIR becomes --data-root=DIR-empty. */
#include <errno.h>
#include <stdlib.h>

#include "engine_common.h"

int main(int argc, char** argv)
{
    static const char flag[] = "--data-root=";
    char** args = calloc((size_t)argc + 1, sizeof *args);
    if (!args)
        return 1;
    args[0] = (char*)REAL_DOCKERD;
    for (int i = 1; i < argc; ++i) {
        args[i] = argv[i];
        if (strncmp(argv[i], flag, sizeof flag - 1) == 0) {
            size_t len = strlen(argv[i]) + sizeof "-empty";
            args[i] = malloc(len);
            if (!args[i])
                return 1;
            snprintf(args[i], len, "%s-empty", argv[i]);
        }
    }
    execv(REAL_DOCKERD, args);
    fprintf(stderr, "engine_empty_root: cannot run %s: %s\n", REAL_DOCKERD, strerror(errno));
    return 127;
}
