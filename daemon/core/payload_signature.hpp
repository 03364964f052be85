// Signed payloads ([trust]): which minisign keys the agent trusts, and
// whether a payload's signature lets it in. Checked in two halves: before
// anything is copied (the signature's form, its key, its trusted comment and
// the version it names), and while the file is copied (the signature over
// the very bytes that are staged, core/staging.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "minisign.hpp"

namespace armdock {

struct TrustedKey {
    MinisignPublicKey key;
    std::filesystem::path file;
};

struct TrustedKeys {
    std::filesystem::path folder;
    std::vector<TrustedKey> keys;
    std::vector<std::string> unreadable;  // "FILE: why", for the message when no key matches
};

// The minisign public keys in `folder`: each regular file named *.pub (at
// most 256 of them, each at most 4 KiB; a link, a FIFO or a file that is not
// a key is skipped and listed in `unreadable`). A missing folder holds no key. Small reads: fine on the loop.
TrustedKeys readTrustedKeys(const std::filesystem::path& folder);

// "" or, for the log at start and reload: require_signature is on and the
// keys folder holds no key, so every upgrade will be refused.
std::string missingKeysWarning(const TrustSection& trust);

// A payload's signature, checked as far as it can be before its file is read.
struct AcceptedSignature {
    MinisignSignature signature;
    TrustedKey signer;
    std::optional<std::string> version;  // the trusted comment's version=
};

// Throws AgentError(PayloadRejected) whose message names the payload, says
// where the signature came from (`origin`: "option signature.docker",
// "/var/lib/armdock/incoming/docker.minisig") and what to do, when: it is not
// minisign's text; no key in `keys` has its key id; its trusted comment does
// not verify with that key (the comment or the signature was altered); or,
// with trust.minVersion set, `enginePayload` (min_version is the engine's
// version: other payloads number theirs differently) and `allowDowngrade`
// false, the comment names no version or one older than min_version.
// AgentError(Failed) when OpenSSL itself fails.
AcceptedSignature acceptSignature(const std::string& payloadName, std::string_view text, const std::string& origin,
                                  const TrustedKeys& keys, const TrustSection& trust, bool enginePayload, bool allowDowngrade);

// The second half, on the staged copy: `blake2b` is the digest of the bytes
// copied (the prehashed form); the legacy form reads `stagedFile` again.
// Throws AgentError(PayloadRejected) naming the payload, the signer's key and
// the file when the signature is not over these bytes.
void verifySignedContent(const std::string& payloadName, const AcceptedSignature& accepted,
                         const std::array<std::uint8_t, 64>& blake2b, const std::filesystem::path& stagedFile);

}  // namespace armdock
