// minisign's public key and signature formats, and their Ed25519
// verification through OpenSSL. A public key file is
//   untrusted comment: <text>
//   base64("Ed" || key id (8 bytes) || Ed25519 public key (32))
// and a signature (NAME.minisig)
//   untrusted comment: <text>
//   base64(algorithm (2) || key id (8) || Ed25519 signature (64))
//   trusted comment: <text>
//   base64(Ed25519 signature of (the signature's 64 bytes || the trusted comment))
// where algorithm "ED" signs the BLAKE2b-512 digest of the file (minisign's
// default) and "Ed" the file itself (`minisign -l`, the legacy format).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace armdock {

// A key or signature text that is not in minisign's format: what() says what is wrong.
class MinisignFormatError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

using MinisignKeyId = std::array<std::uint8_t, 8>;

struct MinisignPublicKey {
    MinisignKeyId keyId{};
    std::array<std::uint8_t, 32> key{};
};

struct MinisignSignature {
    bool prehashed = true;  // "ED": signs BLAKE2b-512(file); "Ed": the file
    MinisignKeyId keyId{};
    std::array<std::uint8_t, 64> signature{};
    std::string trustedComment;
    std::array<std::uint8_t, 64> commentSignature{};
};

// The largest text either parser reads: a signature is about 300 bytes.
inline constexpr std::size_t maxMinisignText = 4096;

// Throw MinisignFormatError. A public key may be the file's two lines or the
// base64 line alone (`minisign -P`'s form); blank lines and "\r" are ignored.
MinisignPublicKey parseMinisignPublicKey(std::string_view text);
MinisignSignature parseMinisignSignature(std::string_view text);

// As minisign prints it: upper-case hex without leading zeros, the id read as a little-endian number.
std::string keyIdText(const MinisignKeyId& id);

// The trusted comment's "version=V" word (words are split by spaces and
// tabs); nullopt when it has none.
std::optional<std::string> trustedCommentVersion(std::string_view trustedComment);

// Ed25519 (OpenSSL): true when `signature` is `key`'s over `message`.
bool ed25519Verify(const MinisignPublicKey& key, const std::uint8_t* signature, const void* message, std::size_t size);

// The comment signature: true when `key` signed this trusted comment with this signature.
bool trustedCommentVerifies(const MinisignSignature& signature, const MinisignPublicKey& key);

// The file signature over `signed` (the BLAKE2b-512 digest when prehashed, else the file's bytes).
bool fileSignatureVerifies(const MinisignSignature& signature, const MinisignPublicKey& key, const void* data, std::size_t size);

// BLAKE2b-512 as it goes (OpenSSL's EVP), for the prehashed form.
class Blake2b512 {
public:
    Blake2b512();
    ~Blake2b512();
    Blake2b512(const Blake2b512&) = delete;
    Blake2b512& operator=(const Blake2b512&) = delete;
    void update(const void* data, std::size_t size);
    std::array<std::uint8_t, 64> finish();

private:
    void* context_;  // EVP_MD_CTX
};

}  // namespace armdock
