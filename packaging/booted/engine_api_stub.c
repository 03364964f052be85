/* A stand-in Docker engine for the booted arm64 check: it answers the part of
 * the Engine API the agent's health check reads, and nothing else.
 *
 * packaging/check-booted-arm64.sh builds it statically for aarch64 three
 * times, with three ENGINE_VERSIONs, and installs the oldest as
 * /usr/bin/dockerd of an arm64 system booted under qemu; the others are the
 * upgrades the agent installs there. `dockerd -v` prints the version line; otherwise it serves
 * HTTP/1.0-style GETs (one per connection, as the agent sends them) on the
 * socket systemd passes (-H fd://, LISTEN_FDS) or on /var/run/docker.sock:
 *   /_ping            OK
 *   /version          {"Version": ENGINE_VERSION, ...}
 *   /info             live-restore off, not in a Swarm, no containers
 *   /containers/json  []
 * with an optional /vX.Y prefix and query string. It sends READY=1 to
 * $NOTIFY_SOCKET once it listens and exits 0 on SIGTERM. */
#define _GNU_SOURCE /* accept4 */
#define ENGINE_READY_STATUS "answering the Engine API subset"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../tests/engines/engine_common.h"

#define DEFAULT_SOCKET "/var/run/docker.sock"

static const char* owned_socket; /* set before the handler is installed */

/* Exits at once: a flag tested before a blocking accept() could miss it. */
static void on_term(int sig)
{
    (void)sig;
    if (owned_socket)
        unlink(owned_socket);
    _exit(0);
}

/* The socket systemd passed (LISTEN_PID is ours, LISTEN_FDS >= 1: fd 3). */
static int passed_socket(void)
{
    const char* pid = getenv("LISTEN_PID");
    const char* fds = getenv("LISTEN_FDS");
    if (!pid || !fds || atol(pid) != (long)getpid() || atoi(fds) < 1)
        return -1;
    return 3;
}

static int own_socket(const char* path)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path)
        return -1;
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    unlink(path);
    if (bind(fd, (struct sockaddr*)&addr, sizeof addr) < 0 || chmod(path, 0660) < 0 || listen(fd, 64) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void write_all(int fd, const char* p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void answer(int fd, int status, const char* type, const char* body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nApi-Version: 1.41\r\nServer: Docker/" ENGINE_VERSION
        " (linux)\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
        status, status == 200 ? "OK" : "Not Found", type, strlen(body));
    write_all(fd, head, (size_t)n);
    write_all(fd, body, strlen(body));
}

/* The request target without "/vX.Y" in front and without its query. */
static void request_path(const char* request, char* path, size_t size)
{
    path[0] = '\0';
    const char* p = strchr(request, ' ');
    if (!p)
        return;
    ++p;
    if (p[0] == '/' && p[1] == 'v' && p[2] >= '0' && p[2] <= '9') {
        const char* slash = strchr(p + 1, '/');
        const char* space = strchr(p, ' ');
        if (slash && (!space || slash < space))
            p = slash;
    }
    size_t n = 0;
    while (p[n] && p[n] != ' ' && p[n] != '?' && n + 1 < size)
        ++n;
    memcpy(path, p, n);
    path[n] = '\0';
}

static void serve(int client)
{
    /* One connection at a time: a client that sends nothing must not stall the others. */
    struct timeval timeout = {5, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char request[4096];
    size_t have = 0;
    while (have + 1 < sizeof request) {
        ssize_t r = read(client, request + have, sizeof request - 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
        request[have] = '\0';
        if (strstr(request, "\r\n\r\n"))
            break;
    }
    request[have] = '\0';
    char path[256];
    request_path(request, path, sizeof path);
    if (strcmp(path, "/_ping") == 0)
        answer(client, 200, "text/plain; charset=utf-8", "OK");
    else if (strcmp(path, "/version") == 0)
        answer(client, 200, "application/json",
            "{\"Version\":\"" ENGINE_VERSION "\",\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.12\","
            "\"GitCommit\":\"" ENGINE_BUILD "\",\"Os\":\"linux\",\"Arch\":\"arm64\","
            "\"Components\":[{\"Name\":\"Engine\",\"Version\":\"" ENGINE_VERSION "\"}]}\n");
    else if (strcmp(path, "/info") == 0)
        answer(client, 200, "application/json",
            "{\"ID\":\"engine-api-stub\",\"Containers\":0,\"ContainersRunning\":0,"
            "\"ServerVersion\":\"" ENGINE_VERSION "\",\"LiveRestoreEnabled\":false,"
            "\"Swarm\":{\"LocalNodeState\":\"inactive\"}}\n");
    else if (strcmp(path, "/containers/json") == 0)
        answer(client, 200, "application/json", "[]\n");
    else
        answer(client, 404, "application/json", "{\"message\":\"page not found\"}\n");
}

int main(int argc, char** argv)
{
    if (engine_wants_version(argc, argv))
        return engine_print_version(ENGINE_VERSION, ENGINE_BUILD);

    signal(SIGPIPE, SIG_IGN);
    int listener = passed_socket();
    if (listener < 0) {
        owned_socket = DEFAULT_SOCKET;
        listener = own_socket(owned_socket);
    }
    if (listener < 0) {
        fprintf(stderr, "engine_api_stub: no socket to serve: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    fprintf(stderr, "engine_api_stub %s: serving the Engine API subset on %s\n", ENGINE_VERSION,
        owned_socket ? owned_socket : "the socket systemd passed");
    engine_notify_ready();
    for (;;) {
        int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "engine_api_stub: accept: %s\n", strerror(errno));
            return 1; /* not a listening socket: spinning would help nobody */
        }
        serve(client);
        close(client);
    }
}
