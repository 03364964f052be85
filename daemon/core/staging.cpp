#include "staging.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include "durable_fs.hpp"
#include "errors.hpp"
#include "fd_io.hpp"
#include "sha_digest.hpp"
#include "unique_fd.hpp"

namespace armdock {

namespace {

constexpr std::size_t chunkSize = 1 << 20;
constexpr std::string_view stagedMarker = ".armdock-";

// A failure of the copy itself (not of the source): the message names the
// staged file and the errno text, e.g. "No space left on device".
class CopyFailure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

[[noreturn]] void copyFailed(const std::string& what, const std::filesystem::path& path, int error)
{
    throw CopyFailure(what + " " + path.string() + ": " + std::strerror(error));
}

void writeAll(int fd, const char* data, std::size_t size, const std::filesystem::path& path)
{
    if (const int error = writeFully(fd, data, size))
        copyFailed("cannot write", path, error);
}

// pread from offset 0, whatever the descriptor's position: the verifier (or
// anyone else) may have read from it already.
// `blake2b`: also hashed into when a signature is to be checked (nullptr: not).
std::uint64_t copyAndHash(int sourceFd, int stagedFd, const std::filesystem::path& staged, StagedFile& result, Blake2b512* blake2b)
{
    Digest sha256(Digest::Algorithm::Sha256);
    Digest sha1(Digest::Algorithm::Sha1);
    std::vector<char> buffer(chunkSize);
    std::uint64_t offset = 0;
    for (;;) {
        ssize_t got = ::pread(sourceFd, buffer.data(), buffer.size(), static_cast<off_t>(offset));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            copyFailed("cannot read the source for", staged, errno);
        if (got == 0)
            break;
        auto size = static_cast<std::size_t>(got);
        sha256.update(buffer.data(), size);
        sha1.update(buffer.data(), size);
        if (blake2b)
            blake2b->update(buffer.data(), size);
        writeAll(stagedFd, buffer.data(), size, staged);
        offset += size;
    }
    result.sha256 = sha256.hexDigest();
    result.sha1 = sha1.hexDigest();
    return offset;
}

bool sameTime(const timespec& a, const timespec& b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// What changed between the verification and the end of the copy; empty if nothing.
std::string sourceChange(const struct stat& before, const struct stat& after, std::uint64_t copied)
{
    if (before.st_dev != after.st_dev || before.st_ino != after.st_ino)
        return "it is not the file that was verified";
    if (before.st_size != after.st_size || copied != static_cast<std::uint64_t>(before.st_size))
        return "its size changed from " + std::to_string(before.st_size) + " to " + std::to_string(after.st_size)
            + " bytes";
    if (!sameTime(before.st_mtim, after.st_mtim) || !sameTime(before.st_ctim, after.st_ctim))
        return "it was modified";
    if (before.st_mode != after.st_mode || before.st_uid != after.st_uid)
        return "its owner or mode changed";
    return {};
}

std::string lowerCase(std::string text)
{
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
}


void verifySource(int sourceFd, const struct stat& sourceStat, const std::string& payloadName, std::uint64_t copied)
{
    struct stat after {};
    if (::fstat(sourceFd, &after) != 0)
        throw AgentError(ErrorKind::Failed, "payload " + payloadName + ": cannot fstat the source after copying it: "
                                                + std::strerror(errno));
    std::string change = sourceChange(sourceStat, after, copied);
    if (!change.empty())
        throw AgentError(ErrorKind::PayloadRejected, "payload " + payloadName
                                                         + ": the source changed while it was being copied (" + change
                                                         + "); make sure nothing writes it and try again");
}

void verifyDigest(const std::string& payloadName, const std::string& expectedSha256, const std::string& actual)
{
    if (expectedSha256.empty() || lowerCase(expectedSha256) == actual)
        return;
    throw AgentError(ErrorKind::PayloadRejected, "payload " + payloadName + ": SHA-256 mismatch: expected "
                                                     + lowerCase(expectedSha256) + ", the source has " + actual
                                                     + "; check that you gave the right file and digest");
}

}  // namespace

std::filesystem::path stagedPathFor(const std::filesystem::path& target, std::string_view transactionId)
{
    return target.parent_path()
        / ("." + target.filename().string() + std::string(stagedMarker) + std::string(transactionId));
}

bool isStagedFileName(std::string_view fileName)
{
    if (fileName.size() < 2 || fileName.front() != '.')
        return false;
    auto marker = fileName.rfind(stagedMarker);
    // A name before the marker and a transaction id after it.
    return marker != std::string_view::npos && marker > 1 && marker + stagedMarker.size() < fileName.size();
}

FileAttributes attributesToCarry(const std::string& payloadName, const std::filesystem::path& target, mode_t modeIfAbsent)
{
    std::error_code ec;
    if (!std::filesystem::is_regular_file(std::filesystem::status(target, ec)))
        return FileAttributes::ofNewFile(modeIfAbsent);
    FileAttributes installed;
    try {
        installed = readFileAttributes(target);
    } catch (const AttributeError& e) {
        throw AgentError(ErrorKind::Failed, "payload " + payloadName + ": " + e.what());
    }
    const std::string where = "payload " + payloadName + ": the installed " + target.string() + " ";
    const std::string carried = " (its owner and mode are carried to the new file)";
    if (installed.uid != 0)
        throw AgentError(ErrorKind::PayloadRejected, where + "is owned by uid " + std::to_string(installed.uid) + ", not root" + carried +
                                                         "; chown root it, then upgrade again");
    if (installed.mode & (S_IWGRP | S_IWOTH))
        throw AgentError(ErrorKind::PayloadRejected, where + "is group- or world-writable (" + describeAttributes(installed) + ")" + carried +
                                                         "; chmod go-w it, then upgrade again");
    return installed;
}

StagedFile stageCopy(int sourceFd, const struct stat& sourceStat, const std::string& payloadName,
                     const std::filesystem::path& target, const FileAttributes& attributes, std::string_view transactionId,
                     const std::string& expectedSha256, const AcceptedSignature* signature)
{
    StagedFile result;
    result.target = target;
    result.staged = stagedPathFor(target, transactionId);
    try {
        // 0600 until complete: nobody may run a half-written engine.
        UniqueFd staged(::open(result.staged.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
        if (!staged)
            copyFailed("cannot create", result.staged, errno);
        PartialFile guard(result.staged);  // removed unless the copy completed and was accepted
        std::optional<Blake2b512> blake2b;
        if (signature && signature->signature.prehashed)
            blake2b.emplace();
        result.size = copyAndHash(sourceFd, staged.get(), result.staged, result, blake2b ? &*blake2b : nullptr);
        // After the last write (a write clears setuid bits and capabilities), before the swap.
        applyFileAttributes(staged.get(), result.staged, attributes, target);
        result.attributes = readFileAttributes(staged.get(), result.staged);
        if (::fsync(staged.get()) != 0)
            copyFailed("cannot fsync", result.staged, errno);
        staged.reset();
        fsyncDirectory(result.staged.parent_path());
        verifySource(sourceFd, sourceStat, payloadName, result.size);
        verifyDigest(payloadName, expectedSha256, result.sha256);
        if (signature)
            verifySignedContent(payloadName, *signature, blake2b ? blake2b->finish() : std::array<std::uint8_t, 64>{}, result.staged);
        guard.keep();
    } catch (const AttributeError& failure) {
        throw AgentError(ErrorKind::Failed, "payload " + payloadName + ": staging failed: " + failure.what());
    } catch (const CopyFailure& failure) {
        throw AgentError(ErrorKind::Failed, "payload " + payloadName + ": staging failed: " + failure.what()
                                                + "; free space or fix the folder and try again");
    } catch (const std::system_error& failure) {
        throw AgentError(ErrorKind::Failed, "payload " + payloadName + ": staging to " + result.staged.string()
                                                + " failed: " + failure.what());
    }
    return result;
}

}  // namespace armdock
