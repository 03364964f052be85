// Step 2 of a transaction (staging): copies a verified source into the
// target's own folder under a hidden temporary name, so that the swap is a
// rename on one filesystem. Runs off the event loop.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "file_attributes.hpp"
#include "payload_signature.hpp"

namespace armdock {

struct StagedFile {
    std::filesystem::path staged;  // <target dir>/.<target name>.armdock-<txid>
    std::filesystem::path target;
    std::string sha256;
    std::string sha1;  // dockerinit pairing and InitSha1 need it
    std::uint64_t size = 0;
    FileAttributes attributes;  // what the staged file was given (owner, mode, extended attributes)
};

std::filesystem::path stagedPathFor(const std::filesystem::path& target, std::string_view transactionId);
bool isStagedFileName(std::string_view fileName);  // ".<anything>.armdock-<txid>"

// The attributes a new file for `target` gets (see file_attributes.hpp): those
// of the file installed there now (following a symbolic link to the file it
// names), so that what a package's postinst gave the engine (`setcap`, a
// group, setuid) stays on its next version, as a package upgrade would keep
// it; FileAttributes::ofNewFile(modeIfAbsent) when there is none. Throws
// AgentError(PayloadRejected) naming the payload, the target and the
// attribute for a target the agent would not install: owned by a uid other
// than root, or group- or world-writable (the same rules as for a source:
// only root may be able to change what the agent installs).
FileAttributes attributesToCarry(const std::string& payloadName, const std::filesystem::path& target, mode_t modeIfAbsent);

// Copies everything from sourceFd (from offset 0) into stagedPathFor(target,
// txid), hashing SHA-256 and SHA-1 as it goes, gives it `attributes` (after
// the last byte: a write clears setuid bits and capabilities), fsyncs the
// file and the folder. An attribute that cannot be applied throws
// AgentError(Failed) naming it and what to do; nothing is left behind. Then fstat's the source again: if its size, mtime, ctime or
// inode changed, the source was replaced or modified while being read and
// AgentError(PayloadRejected) is thrown. If expectedSha256 is not empty and
// differs, AgentError(PayloadRejected) names both digests. With `signature`
// (its key and comment already accepted), the bytes copied are hashed with
// BLAKE2b-512 too and must be what it signed: AgentError(PayloadRejected)
// otherwise (core/payload_signature.hpp). Any failure
// (ENOSPC, EIO...) removes the partial copy and throws AgentError(Failed)
// naming the staged path and the errno text.
StagedFile stageCopy(int sourceFd, const struct stat& sourceStat, const std::string& payloadName,
                     const std::filesystem::path& target, const FileAttributes& attributes, std::string_view transactionId,
                     const std::string& expectedSha256, const AcceptedSignature* signature = nullptr);
// The same with the attributes of a new file: root's, `mode`.
inline StagedFile stageCopy(int sourceFd, const struct stat& sourceStat, const std::string& payloadName,
                            const std::filesystem::path& target, mode_t mode, std::string_view transactionId,
                            const std::string& expectedSha256, const AcceptedSignature* signature = nullptr)
{
    return stageCopy(sourceFd, sourceStat, payloadName, target, FileAttributes::ofNewFile(mode), transactionId, expectedSha256, signature);
}

}  // namespace armdock
