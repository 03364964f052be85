// SHA-256 and SHA-1 through OpenSSL's libcrypto (which uses the ARMv8 SHA-2
// instructions where the CPU has them). Digests are lower-case hex.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

namespace armdock {

class Digest {
public:
    enum class Algorithm { Sha256, Sha1 };
    explicit Digest(Algorithm algorithm);
    ~Digest();
    Digest(const Digest&) = delete;
    Digest& operator=(const Digest&) = delete;

    void update(const void* data, std::size_t size);
    std::string hexDigest();  // finishes the digest

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

std::string sha256Hex(const void* data, std::size_t size);
std::string sha256OfFile(const std::filesystem::path& file);
std::string sha1OfFile(const std::filesystem::path& file);

// True for 64 lower- or upper-case hex digits.
bool isSha256Hex(const std::string& text);

}  // namespace armdock
