/* A Docker engine that comes up (it is the real dockerd), answers, and is
 * SIGKILLed ENGINE_DIE_AFTER_MS (600) ms after its first good GET /_ping:
 * it passes the first health check and dies inside the grace period.
 * The killer learns the socket's path from the fd systemd passed (fd 3); with
 * no socket passed it counts the delay from the start. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include "engine_common.h"

#ifndef ENGINE_DIE_AFTER_MS
#define ENGINE_DIE_AFTER_MS 600
#endif

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int ping_ok(const struct sockaddr_un* addr, socklen_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int ok = 0;
    static const char req[] = "GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    if (connect(fd, (const struct sockaddr*)addr, len) == 0 &&
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1)) {
        char buf[512];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            ok = strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 9, "200", 3) == 0;
        }
    }
    close(fd);
    return ok;
}

static void killer(pid_t engine)
{
    struct sockaddr_un addr;
    socklen_t len = sizeof addr;
    memset(&addr, 0, sizeof addr);
    const char* fds = getenv("LISTEN_FDS");
    int have_socket = fds && atoi(fds) >= 1 && getsockname(3, (struct sockaddr*)&addr, &len) == 0 &&
        addr.sun_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path) + 1;
    /* Hold no fd of the engine's (the passed socket, the notify socket). */
    for (int fd = 3; fd < 1024; ++fd)
        close(fd);
    if (have_socket) {
        for (int i = 0; i < 6000 && !ping_ok(&addr, len); ++i) { /* up to a minute */
            if (kill(engine, 0) != 0)
                _exit(0);
            sleep_ms(10);
        }
    }
    sleep_ms(ENGINE_DIE_AFTER_MS);
    kill(engine, SIGKILL);
    _exit(0);
}

int main(int argc, char** argv)
{
    if (engine_wants_version(argc, argv))
        return engine_print_version(ENGINE_VERSION, ENGINE_BUILD);
    pid_t engine = getpid();
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "engine_dies_in_grace: fork: %s\n", strerror(errno));
        return 1;
    }
    if (child == 0)
        killer(engine);
    argv[0] = (char*)REAL_DOCKERD;
    execv(REAL_DOCKERD, argv);
    fprintf(stderr, "engine_dies_in_grace: exec %s: %s\n", REAL_DOCKERD, strerror(errno));
    return 127;
}
