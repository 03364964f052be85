#include "payload_signature.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "errors.hpp"
#include "side_file.hpp"
#include "unique_fd.hpp"
#include "version_order.hpp"

namespace armdock {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t maxKeyFiles = 256;

[[noreturn]] void rejected(const std::string& message)
{
    throw AgentError(ErrorKind::PayloadRejected, message);
}

std::string keyList(const TrustedKeys& keys)
{
    std::string list;
    for (const auto& k : keys.keys)
        list += (list.empty() ? "" : ", ") + keyIdText(k.key.keyId) + " (" + k.file.filename().string() + ")";
    return list;
}

std::string unreadableNote(const TrustedKeys& keys)
{
    std::string note;
    for (const auto& why : keys.unreadable)
        note += "; skipped " + why;
    return note;
}

// The legacy form signs the whole file: read back what was staged (the
// agent's own file, 0600 in a root-only folder) through a read-only mapping.
bool legacySignatureVerifies(const AcceptedSignature& accepted, const fs::path& stagedFile)
{
    UniqueFd fd(::open(stagedFile.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0)
        throw AgentError(ErrorKind::Failed, "cannot read back " + stagedFile.string() + " to check its signature: " + std::strerror(errno));
    if (st.st_size == 0)
        return fileSignatureVerifies(accepted.signature, accepted.signer.key, "", 0);
    void* map = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (map == MAP_FAILED)
        throw AgentError(ErrorKind::Failed, "cannot map " + stagedFile.string() + " to check its signature: " + std::strerror(errno));
    const bool good = fileSignatureVerifies(accepted.signature, accepted.signer.key, map, static_cast<std::size_t>(st.st_size));
    ::munmap(map, static_cast<std::size_t>(st.st_size));
    return good;
}

// OpenSSL failing (not a bad signature): an AgentError like any other failure.
template <typename Check>
bool verifying(const std::string& payloadName, Check check)
{
    try {
        return check();
    } catch (const AgentError&) {
        throw;
    } catch (const std::exception& e) {
        throw AgentError(ErrorKind::Failed, "payload " + payloadName + ": the signature could not be checked: " + e.what());
    }
}

}  // namespace

TrustedKeys readTrustedKeys(const fs::path& folder)
{
    TrustedKeys keys;
    keys.folder = folder;
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
        const fs::path& path = entry.path();
        if (path.extension() == ".pub" && !path.filename().string().starts_with("."))
            files.push_back(path);
    }
    std::sort(files.begin(), files.end());
    if (files.size() > maxKeyFiles) {
        keys.unreadable.push_back(std::to_string(files.size() - maxKeyFiles) + " key files after the first " + std::to_string(maxKeyFiles));
        files.resize(maxKeyFiles);
    }
    for (const auto& file : files) {
        try {
            keys.keys.push_back({parseMinisignPublicKey(readSmallRegularFile(file, maxMinisignText, "a minisign public key")), file});
        } catch (const std::exception& e) {
            keys.unreadable.push_back(file.string() + " (" + e.what() + ")");
        }
    }
    return keys;
}

std::string missingKeysWarning(const TrustSection& trust)
{
    if (!trust.requireSignature)
        return {};
    const TrustedKeys keys = readTrustedKeys(trust.keys);
    if (!keys.keys.empty())
        return {};
    return "[trust] require_signature is on but " + trust.keys.string() + " holds no minisign public key" + unreadableNote(keys) +
           ": every upgrade will be refused until the signer's key is put there as NAME.pub";
}

AcceptedSignature acceptSignature(const std::string& payloadName, std::string_view text, const std::string& origin,
                                  const TrustedKeys& keys, const TrustSection& trust, bool enginePayload, bool allowDowngrade)
{
    const std::string about = "payload " + payloadName + ": the signature (" + origin + ")";
    AcceptedSignature accepted;
    try {
        accepted.signature = parseMinisignSignature(text);
    } catch (const MinisignFormatError& e) {
        rejected(about + " is not a minisign signature: " + e.what() + "; give the .minisig file `minisign -S` wrote, unchanged");
    }
    const std::string id = keyIdText(accepted.signature.keyId);
    // Every trusted key with its id (two files may hold keys with one id: a stale copy).
    std::vector<const TrustedKey*> withId;
    for (const auto& k : keys.keys)
        if (k.key.keyId == accepted.signature.keyId)
            withId.push_back(&k);
    if (withId.empty()) {
        const std::string held = keys.keys.empty() ? "holds no key" : "holds " + keyList(keys);
        rejected(about + " is made with key " + id + ", which is not trusted: " + keys.folder.string() + " " + held + unreadableNote(keys) +
                 ". Sign with a trusted key, or add the signer's public key (its minisign.pub) to " + keys.folder.string() +
                 " as NAME.pub if you trust it");
    }
    const auto signer = std::find_if(withId.begin(), withId.end(), [&](const TrustedKey* k) {
        return verifying(payloadName, [&] { return trustedCommentVerifies(accepted.signature, k->key); });
    });
    if (signer == withId.end())
        rejected(about + ": its trusted comment \"" + accepted.signature.trustedComment + "\" is not signed by key " + id + " (" +
                 withId.front()->file.string() + "): the comment or the signature was altered; sign the file again");
    accepted.signer = **signer;
    accepted.version = trustedCommentVersion(accepted.signature.trustedComment);
    if (!trust.minVersion.empty() && enginePayload && !allowDowngrade) {
        const std::string policy = "[trust] min_version is " + trust.minVersion;
        if (!accepted.version)
            rejected(about + " names no version (its trusted comment is \"" + accepted.signature.trustedComment + "\") and " + policy +
                     ": sign with `minisign -S -t 'version=VERSION'`, or give the option allow_downgrade (armdockctl upgrade --allow-downgrade)"
                     " to install it anyway");
        if (compareVersions(*accepted.version, trust.minVersion) < 0)
            rejected(about + " is for version " + *accepted.version + ", older than " + policy +
                     "; give the option allow_downgrade (armdockctl upgrade --allow-downgrade) to install an older engine on purpose");
    }
    return accepted;
}

void verifySignedContent(const std::string& payloadName, const AcceptedSignature& accepted, const std::array<std::uint8_t, 64>& blake2b,
                         const fs::path& stagedFile)
{
    const bool good = verifying(payloadName, [&] {
        return accepted.signature.prehashed ? fileSignatureVerifies(accepted.signature, accepted.signer.key, blake2b.data(), blake2b.size())
                                            : legacySignatureVerifies(accepted, stagedFile);
    });
    if (good)
        return;
    rejected("payload " + payloadName + ": its signature by key " + keyIdText(accepted.signature.keyId) + " (" +
             accepted.signer.file.string() + ") is not for this file (the signature's trusted comment: \"" +
             accepted.signature.trustedComment +
             "\"): the file was changed after it was signed, or the signature belongs to another file; check the file and its .minisig "
             "(`minisign -Vm FILE -p " + accepted.signer.file.string() + "`)");
}

}  // namespace armdock
