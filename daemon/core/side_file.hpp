// A small file that rides beside something else (a drop-in's NAME.sha256 and
// NAME.minisig, a trusted key): read without ever blocking or following a
// link, and never more than a few KiB of it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace armdock {

// Opens `path` with O_NONBLOCK and O_NOFOLLOW (a FIFO or a link is refused
// at once, never read) and reads it whole. Throws std::runtime_error saying
// why, in words that follow the file's name: "is a FIFO (named pipe), not a
// file holding a SHA-256 digest; it was not read", "is 9000 bytes; ...".
std::string readSmallRegularFile(const std::filesystem::path& path, off_t maxSize, std::string_view holding);

}  // namespace armdock
