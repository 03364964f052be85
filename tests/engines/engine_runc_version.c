/* runc with a version of the test's choosing.
 *
 * `--version` prints "runc version V" as runc does, V being what follows the
 * last "runc-version=" in the program's own file (the test appends it to a
 * copy), so that each copy is another runc release to the agent and to
 * dockerd's /version. Anything else runs the real runc. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char marker[] = "runc-version=";

/* The version after the last marker in the last 4 KiB of this file, or "". */
static void ownVersion(char* out, size_t size)
{
    char tail[4097];
    out[0] = '\0';
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > 4096 ? end - 4096 : 0;
    ssize_t n = pread(fd, tail, 4096, from);
    close(fd);
    if (n <= 0)
        return;
    tail[n] = '\0';
    const char* last = NULL;
    for (ssize_t i = 0; i + (ssize_t)(sizeof marker - 1) <= n; ++i)
        if (memcmp(tail + i, marker, sizeof marker - 1) == 0)
            last = tail + i + sizeof marker - 1;
    if (!last)
        return;
    size_t len = strcspn(last, "\n");
    if (len >= size)
        len = size - 1;
    memcpy(out, last, len);
    out[len] = '\0';
}

int main(int argc, char** argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        char version[128];
        ownVersion(version, sizeof version);
        if (version[0]) {
            printf("runc version %s\ncommit: armdock-test\nspec: 1.0.2-dev\n", version);
            return 0;
        }
    }
    static char real[] = "/usr/sbin/runc";
    argv[0] = real;
    execv(real, argv);
    fprintf(stderr, "engine_runc_version: cannot run %s: %s\n", real, strerror(errno));
    return 127;
}
