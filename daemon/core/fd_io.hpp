// read(2) and write(2) with EINTR retried: each caller turns the errno into
// its own error (a copy failure, a journal error, a config error).
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace armdock {

// Bytes read (0 at the end of the file), or -errno.
ssize_t readRetrying(int fd, void* buffer, std::size_t size) noexcept;

// Writes all of `data`; 0, or the errno of the write that failed.
int writeFully(int fd, const void* data, std::size_t size) noexcept;

}  // namespace armdock
