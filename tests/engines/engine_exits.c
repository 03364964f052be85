/* A Docker engine that prints a proper version and otherwise exits 1 at once
 * (the start job of a Type=notify unit fails). */
#include <stdlib.h>

#include "engine_common.h"

int main(int argc, char** argv)
{
    if (engine_wants_version(argc, argv))
        return engine_print_version(ENGINE_VERSION, ENGINE_BUILD);
    fprintf(stderr, "engine_exits: failing on purpose\n");
    return 1;
}
