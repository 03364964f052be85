#include "side_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "source_verifier.hpp"
#include "unique_fd.hpp"

namespace armdock {

std::string readSmallRegularFile(const std::filesystem::path& path, off_t maxSize, std::string_view holding)
{
    const std::string notOne = ", not a file holding " + std::string(holding) + "; it was not read";
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
    if (!fd) {
        const int error = errno;
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
            throw std::runtime_error("is " + fileKind(st.st_mode) + notOne);
        throw std::runtime_error(std::string("cannot open it: ") + std::strerror(error));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        throw std::runtime_error(std::string("cannot fstat it: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw std::runtime_error("is " + fileKind(st.st_mode) + notOne);
    if (st.st_size > maxSize)
        throw std::runtime_error("is " + std::to_string(st.st_size) + " bytes; a file holding " + std::string(holding) + " is at most " +
                                 std::to_string(maxSize) + " bytes; it was not read");
    std::string text(static_cast<std::size_t>(st.st_size), '\0');
    const ssize_t got = ::pread(fd.get(), text.data(), text.size(), 0);
    if (got < 0)
        throw std::runtime_error(std::string("cannot read it: ") + std::strerror(errno));
    text.resize(static_cast<std::size_t>(got));
    return text;
}

}  // namespace armdock
