#include "sha_digest.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>

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
    EVP_MD_CTX* context = nullptr;
    bool finished = false;
};

Digest::Digest(Algorithm algorithm) : impl_(std::make_unique<Impl>())
{
    impl_->context = EVP_MD_CTX_new();
    const EVP_MD* md = algorithm == Algorithm::Sha256 ? EVP_sha256() : EVP_sha1();
    if (!impl_->context || EVP_DigestInit_ex(impl_->context, md, nullptr) != 1) {
        EVP_MD_CTX_free(impl_->context);
        throw std::runtime_error("OpenSSL could not set up a digest");
    }
}

Digest::~Digest()
{
    EVP_MD_CTX_free(impl_->context);
}

void Digest::update(const void* data, std::size_t size)
{
    if (impl_->finished)
        throw std::logic_error("Digest::update after hexDigest");
    if (EVP_DigestUpdate(impl_->context, data, size) != 1)
        throw std::runtime_error("OpenSSL digest update failed");
}

std::string Digest::hexDigest()
{
    if (impl_->finished)
        throw std::logic_error("Digest::hexDigest called twice");
    unsigned char bytes[EVP_MAX_MD_SIZE];
    unsigned size = 0;
    if (EVP_DigestFinal_ex(impl_->context, bytes, &size) != 1)
        throw std::runtime_error("OpenSSL digest final failed");
    impl_->finished = true;
    return toHex(bytes, size);
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
