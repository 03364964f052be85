#include "durable_fs.hpp"

#include "fd_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <system_error>
#include <vector>

#include "sha_digest.hpp"
#include "unique_fd.hpp"

namespace armdock {

namespace {

constexpr std::size_t chunkSize = 1 << 20;

[[noreturn]] void throwErrno(int error, const std::string& what, const std::filesystem::path& path)
{
    throw std::system_error(error, std::generic_category(), what + " " + path.string());
}

std::filesystem::path folderOf(const std::filesystem::path& file)
{
    auto parent = file.parent_path();
    return parent.empty() ? std::filesystem::path(".") : parent;
}

void writeAll(int fd, const char* data, std::size_t size, const std::filesystem::path& nameForErrors)
{
    if (const int error = writeFully(fd, data, size))
        throwErrno(error, "cannot write", nameForErrors);
}


}  // namespace

bool readInChunks(const std::filesystem::path& file, std::size_t chunkSize,
                  const std::function<bool(const char* data, std::size_t size)>& chunk)
{
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd)
        throw std::system_error(errno, std::generic_category(), "cannot open " + file.string());
    std::vector<char> buffer(chunkSize);
    for (;;) {
        const ssize_t got = readRetrying(fd.get(), buffer.data(), buffer.size());
        if (got < 0)
            throw std::system_error(static_cast<int>(-got), std::generic_category(), "cannot read " + file.string());
        if (got == 0)
            return false;
        if (!chunk(buffer.data(), static_cast<std::size_t>(got)))
            return true;
    }
}

PartialFile::~PartialFile()
{
    if (!path_.empty())
        ::unlink(path_.c_str());
}

void fsyncFd(int fd, const std::filesystem::path& nameForErrors)
{
    if (::fsync(fd) != 0)
        throwErrno(errno, "cannot fsync", nameForErrors);
}

void fsyncDirectory(const std::filesystem::path& dir)
{
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd)
        throwErrno(errno, "cannot open folder", dir);
    fsyncFd(fd.get(), dir);
}

void writeFileDurably(const std::filesystem::path& file, std::string_view content, mode_t mode)
{
    std::string pattern = (folderOf(file) / ("." + file.filename().string() + ".tmp-XXXXXX")).string();
    UniqueFd fd(::mkostemp(pattern.data(), O_CLOEXEC));
    if (!fd)
        throwErrno(errno, "cannot create a temporary file beside", file);
    std::filesystem::path temporary = pattern;
    PartialFile partial(temporary);
    // mkostemp creates 0600; fchmod is not subject to the umask.
    if (::fchmod(fd.get(), mode) != 0)
        throwErrno(errno, "cannot chmod", temporary);
    writeAll(fd.get(), content.data(), content.size(), temporary);
    fsyncFd(fd.get(), temporary);
    fd.reset();
    if (::rename(temporary.c_str(), file.c_str()) != 0)
        throwErrno(errno, "cannot rename " + temporary.string() + " to", file);
    partial.keep();
    fsyncDirectory(folderOf(file));
}

void renameDurably(const std::filesystem::path& from, const std::filesystem::path& to)
{
    if (::rename(from.c_str(), to.c_str()) != 0)
        throwErrno(errno, "cannot rename " + from.string() + " to", to);
    fsyncDirectory(folderOf(to));
    if (folderOf(from) != folderOf(to))
        fsyncDirectory(folderOf(from));
}

void symlinkDurably(const std::filesystem::path& text, const std::filesystem::path& at)
{
    if (::symlink(text.c_str(), at.c_str()) != 0)
        throwErrno(errno, "cannot create the symbolic link " + at.string() + " ->", text);
    fsyncDirectory(folderOf(at));
}

void removeDurably(const std::filesystem::path& file)
{
    if (::unlink(file.c_str()) != 0) {
        if (errno == ENOENT)
            return;
        throwErrno(errno, "cannot remove", file);
    }
    fsyncDirectory(folderOf(file));
}

std::string copyFileDurably(const std::filesystem::path& from, const std::filesystem::path& to, mode_t mode)
{
    return copyFileDurably(from, to, [&](int fd) {
        if (::fchmod(fd, mode) != 0)
            throwErrno(errno, "cannot chmod", to);
    });
}

std::string copyFileDurably(const std::filesystem::path& from, const std::filesystem::path& to,
                            const std::function<void(int fd)>& finish)
{
    UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!in)
        throwErrno(errno, "cannot open", from);
    UniqueFd out(::open(to.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
    if (!out)
        throwErrno(errno, "cannot create", to);
    PartialFile partial(to);
    Digest digest(Digest::Algorithm::Sha256);
    std::vector<char> buffer(chunkSize);
    for (;;) {
        const ssize_t got = readRetrying(in.get(), buffer.data(), buffer.size());
        if (got < 0)
            throwErrno(static_cast<int>(-got), "cannot read", from);
        if (got == 0)
            break;
        digest.update(buffer.data(), static_cast<std::size_t>(got));
        writeAll(out.get(), buffer.data(), static_cast<std::size_t>(got), to);
    }
    finish(out.get());
    fsyncFd(out.get(), to);
    fsyncDirectory(folderOf(to));
    partial.keep();
    return digest.hexDigest();
}

std::string readSmallFile(const std::filesystem::path& file)
{
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd)
        throwErrno(errno, "cannot open", file);
    std::string content;
    char buffer[8192];
    for (;;) {
        const ssize_t got = readRetrying(fd.get(), buffer, sizeof buffer);
        if (got < 0)
            throwErrno(static_cast<int>(-got), "cannot read", file);
        if (got == 0)
            return content;
        content.append(buffer, static_cast<std::size_t>(got));
    }
}

}  // namespace armdock
