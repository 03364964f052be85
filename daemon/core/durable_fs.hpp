// File operations that survive a crash or power loss: every change is
// fsync'ed, and so is the folder that names it. Failures throw
// std::system_error whose what() names the path.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace armdock {

// Removes a half-written file when the operation that made it fails: unlinks
// `path` on destruction unless keep() was called.
class PartialFile {
public:
    explicit PartialFile(std::filesystem::path path) : path_(std::move(path)) {}
    ~PartialFile();
    PartialFile(const PartialFile&) = delete;
    PartialFile& operator=(const PartialFile&) = delete;
    void keep() { path_.clear(); }

private:
    std::filesystem::path path_;
};

void fsyncFd(int fd, const std::filesystem::path& nameForErrors);
void fsyncDirectory(const std::filesystem::path& dir);

// Writes content to a temporary file beside `file`, fsyncs it, renames it over
// `file` and fsyncs the folder.
void writeFileDurably(const std::filesystem::path& file, std::string_view content, mode_t mode = 0644);

// rename(2) then fsync of the destination's folder (and the source's, if it differs).
void renameDurably(const std::filesystem::path& from, const std::filesystem::path& to);

// symlink(2) of `text` at `at`, then fsync of the folder; fails if `at` exists.
void symlinkDurably(const std::filesystem::path& text, const std::filesystem::path& at);

// unlink(2) then fsync of the folder; a missing file is not an error.
void removeDurably(const std::filesystem::path& file);

// Copies `from` to `to` (created with `mode`, replacing nothing: fails if `to`
// exists), fsyncs it, and returns the SHA-256 of what was copied (hex).
std::string copyFileDurably(const std::filesystem::path& from, const std::filesystem::path& to, mode_t mode);
// The same, with `finish(fd)` instead of the chmod: it runs on the new file
// after its last byte is written and before the fsync (a write clears
// setuid bits and capabilities, so attributes are given there).
std::string copyFileDurably(const std::filesystem::path& from, const std::filesystem::path& to,
                            const std::function<void(int fd)>& finish);

// Reads `file` from the start in chunks of `chunkSize` bytes and hands each to
// `chunk` until it returns false (then returns true) or the file ends (then
// returns false). Throws std::system_error naming the file.
bool readInChunks(const std::filesystem::path& file, std::size_t chunkSize,
                  const std::function<bool(const char* data, std::size_t size)>& chunk);

// Reads a whole (small) file.
std::string readSmallFile(const std::filesystem::path& file);

}  // namespace armdock
