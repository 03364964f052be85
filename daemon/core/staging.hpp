// Step 2 of a transaction (staging): copies a verified source into the
// target's own folder under a hidden temporary name, so that the swap is a
// rename on one filesystem. Runs off the event loop.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace armdock {

struct StagedFile {
    std::filesystem::path staged;  // <target dir>/.<target name>.armdock-<txid>
    std::filesystem::path target;
    std::string sha256;
    std::string sha1;  // dockerinit pairing and InitSha1 need it
    std::uint64_t size = 0;
};

std::filesystem::path stagedPathFor(const std::filesystem::path& target, std::string_view transactionId);
bool isStagedFileName(std::string_view fileName);  // ".<anything>.armdock-<txid>"

// Copies everything from sourceFd (from offset 0) into stagedPathFor(target,
// txid), hashing SHA-256 and SHA-1 as it goes, sets `mode`, fsyncs the file
// and the folder. Then fstat's the source again: if its size, mtime, ctime or
// inode changed, the source was replaced or modified while being read and
// AgentError(PayloadRejected) is thrown. If expectedSha256 is not empty and
// differs, AgentError(PayloadRejected) names both digests. Any failure
// (ENOSPC, EIO...) removes the partial copy and throws AgentError(Failed)
// naming the staged path and the errno text.
StagedFile stageCopy(int sourceFd, const struct stat& sourceStat, const std::string& payloadName,
                     const std::filesystem::path& target, mode_t mode, std::string_view transactionId,
                     const std::string& expectedSha256);

}  // namespace armdock
