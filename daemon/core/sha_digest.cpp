#include "sha_digest.hpp"

#include <fcntl.h>
#include <unistd.h>

// OpenSSL's one-algorithm functions (SHA256_Init/Update/Final): the same
// assembly as EVP (the ARMv8 SHA-2 instructions, SHA-NI/AVX2 on x86-64),
// chosen by the CPU capabilities libcrypto reads in its constructor, but
// none of the provider machinery. EVP_sha256() loads the default provider
// and its algorithm tables: measured 1.2 MB more resident libcrypto pages in
// the agent (2.9 MB against 1.7 MB), kept for the process's life, for two
// digests. OpenSSL 3 marks these functions deprecated, not removed.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "durable_fs.hpp"

namespace armdock {

namespace {

constexpr std::size_t chunkSize = 1 << 20;

std::string toHex(const unsigned char* bytes, unsigned size)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(size * 2);
    for (unsigned i = 0; i < size; ++i) {
        hex.push_back(digits[bytes[i] >> 4]);
        hex.push_back(digits[bytes[i] & 0x0f]);
    }
    return hex;
}

std::string digestOfFile(Digest::Algorithm algorithm, const std::filesystem::path& file)
{
    Digest digest(algorithm);
    readInChunks(file, chunkSize, [&](const char* data, std::size_t size) {
        digest.update(data, size);
        return true;
    });
    return digest.hexDigest();
}

}  // namespace

struct Digest::Impl {
    Algorithm algorithm;
    SHA256_CTX sha256{};
    SHA_CTX sha1{};
    bool finished = false;
};

Digest::Digest(Algorithm algorithm) : impl_(std::make_unique<Impl>())
{
    impl_->algorithm = algorithm;
    const int ok = algorithm == Algorithm::Sha256 ? SHA256_Init(&impl_->sha256) : SHA1_Init(&impl_->sha1);
    if (ok != 1)
        throw std::runtime_error("OpenSSL could not set up a digest");
}

Digest::~Digest() = default;

void Digest::update(const void* data, std::size_t size)
{
    if (impl_->finished)
        throw std::logic_error("Digest::update after hexDigest");
    const int ok = impl_->algorithm == Algorithm::Sha256 ? SHA256_Update(&impl_->sha256, data, size)
                                                         : SHA1_Update(&impl_->sha1, data, size);
    if (ok != 1)
        throw std::runtime_error("OpenSSL digest update failed");
}

std::string Digest::hexDigest()
{
    if (impl_->finished)
        throw std::logic_error("Digest::hexDigest called twice");
    unsigned char bytes[SHA256_DIGEST_LENGTH];
    static_assert(SHA256_DIGEST_LENGTH >= SHA_DIGEST_LENGTH);
    const bool sha256 = impl_->algorithm == Algorithm::Sha256;
    const int ok = sha256 ? SHA256_Final(bytes, &impl_->sha256) : SHA1_Final(bytes, &impl_->sha1);
    if (ok != 1)
        throw std::runtime_error("OpenSSL digest final failed");
    impl_->finished = true;
    return toHex(bytes, sha256 ? SHA256_DIGEST_LENGTH : SHA_DIGEST_LENGTH);
}

std::string sha256Hex(const void* data, std::size_t size)
{
    Digest digest(Digest::Algorithm::Sha256);
    digest.update(data, size);
    return digest.hexDigest();
}

std::string sha256OfFile(const std::filesystem::path& file)
{
    return digestOfFile(Digest::Algorithm::Sha256, file);
}

std::string sha1OfFile(const std::filesystem::path& file)
{
    return digestOfFile(Digest::Algorithm::Sha1, file);
}

bool isSha256Hex(const std::string& text)
{
    return text.size() == 64
        && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
}

}  // namespace armdock
