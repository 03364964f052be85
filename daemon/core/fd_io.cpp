#include "fd_io.hpp"

#include <unistd.h>

#include <cerrno>

namespace armdock {

ssize_t readRetrying(int fd, void* buffer, std::size_t size) noexcept
{
    for (;;) {
        const ssize_t got = ::read(fd, buffer, size);
        if (got >= 0)
            return got;
        if (errno != EINTR)
            return -errno;
    }
}

int writeFully(int fd, const void* data, std::size_t size) noexcept
{
    const char* next = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t written = ::write(fd, next, size);
        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            return errno;
        next += written;
        size -= static_cast<std::size_t>(written);
    }
    return 0;
}

}  // namespace armdock
