/* Shared bits of the failing test engines: the version line and READY=1. */
#ifndef ARMDOCK_ENGINE_COMMON_H
#define ARMDOCK_ENGINE_COMMON_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef ENGINE_VERSION
#define ENGINE_VERSION "20.10.24+dfsg1"
#endif
#ifndef ENGINE_BUILD
#define ENGINE_BUILD "5d6db84"
#endif

#define REAL_DOCKERD "/usr/sbin/dockerd"

#ifndef ENGINE_READY_STATUS
#define ENGINE_READY_STATUS "test engine that never answers"
#endif

static inline int engine_wants_version(int argc, char** argv)
{
    return argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0);
}

static inline int engine_print_version(const char* version, const char* build)
{
    printf("Docker version %s, build %s\n", version, build);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* sd_notify(0, "READY=1") by hand: one datagram to $NOTIFY_SOCKET. */
static inline int engine_notify_ready(void)
{
    const char* path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return -1;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len >= sizeof addr.sun_path)
        return -1;
    memcpy(addr.sun_path, path, len);
    if (addr.sun_path[0] == '@')
        addr.sun_path[0] = '\0'; /* abstract socket */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    static const char msg[] = "READY=1\nSTATUS=" ENGINE_READY_STATUS;
    ssize_t n = sendto(fd, msg, sizeof msg - 1, MSG_NOSIGNAL, (struct sockaddr*)&addr,
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
    return n < 0 ? -1 : 0;
}

#endif
