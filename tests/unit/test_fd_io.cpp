#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <string>

#include "core/fd_io.hpp"

namespace armdock {
namespace {

TEST(FdIo, WritesAllAndReadsItBack)
{
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    const std::string text(3000, 'x');
    EXPECT_EQ(writeFully(fds[1], text.data(), text.size()), 0);
    ::close(fds[1]);
    std::string got;
    char buffer[512];
    for (ssize_t n; (n = readRetrying(fds[0], buffer, sizeof buffer)) > 0;)
        got.append(buffer, static_cast<std::size_t>(n));
    EXPECT_EQ(got, text);
    EXPECT_EQ(readRetrying(fds[0], buffer, sizeof buffer), 0) << "the end of the pipe reads as 0";
    ::close(fds[0]);
}

TEST(FdIo, ErrorsComeBackAsErrno)
{
    char buffer[16];
    EXPECT_EQ(readRetrying(-1, buffer, sizeof buffer), -EBADF);
    EXPECT_EQ(writeFully(-1, "x", 1), EBADF);
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    ::close(fds[0]);
    ::signal(SIGPIPE, SIG_IGN);
    EXPECT_EQ(writeFully(fds[1], "x", 1), EPIPE) << "a pipe with no reader";
    ::close(fds[1]);
}

}  // namespace
}  // namespace armdock
