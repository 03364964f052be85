#include "minisign.hpp"

#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <vector>

namespace armdock {

namespace {

constexpr std::string_view untrustedPrefix = "untrusted comment:";
constexpr std::string_view trustedPrefix = "trusted comment: ";

int base64Value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

// Strict standard base64 (with its padding), as minisign writes it.
std::vector<std::uint8_t> decodeBase64(std::string_view text, std::string_view what)
{
    if (text.empty() || text.size() % 4 != 0)
        throw MinisignFormatError(std::string(what) + " is not base64 (its length is " + std::to_string(text.size()) +
                                  ", not a multiple of 4)");
    std::vector<std::uint8_t> out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        int v[4];
        int padding = 0;
        for (int j = 0; j < 4; ++j) {
            const char c = text[i + j];
            const bool last = i + 4 == text.size();
            if (c == '=' && last && j >= 2 && (j == 3 || text[i + 3] == '=')) {
                v[j] = 0;
                ++padding;
                continue;
            }
            v[j] = base64Value(c);
            if (v[j] < 0 || padding > 0)
                throw MinisignFormatError(std::string(what) + " is not base64 (it holds '" + std::string(1, c) + "')");
        }
        // The bits padding leaves over must be zero, as every encoder writes them.
        if ((padding == 1 && (v[2] & 0x3)) || (padding == 2 && (v[1] & 0xf)))
            throw MinisignFormatError(std::string(what) + " is not base64 (its last group has stray bits)");
        const std::uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
        out.push_back(static_cast<std::uint8_t>(n >> 16));
        if (padding < 2)
            out.push_back(static_cast<std::uint8_t>(n >> 8));
        if (padding < 1)
            out.push_back(static_cast<std::uint8_t>(n));
    }
    return out;
}

// The text's lines, without "\r" and without blank lines.
std::vector<std::string_view> linesOf(std::string_view text, std::string_view what)
{
    if (text.size() > maxMinisignText)
        throw MinisignFormatError(std::string(what) + " is " + std::to_string(text.size()) + " bytes long; minisign's are under " +
                                  std::to_string(maxMinisignText));
    if (text.find('\0') != std::string_view::npos)
        throw MinisignFormatError(std::string(what) + " holds a NUL byte; it is not minisign's text");
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (!line.empty())
            lines.push_back(line);
    }
    return lines;
}

struct EvpPkeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct EvpMdCtxFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

}  // namespace

MinisignPublicKey parseMinisignPublicKey(std::string_view text)
{
    const auto lines = linesOf(text, "the public key");
    std::size_t at = 0;
    if (at < lines.size() && lines[at].starts_with(untrustedPrefix))
        ++at;
    if (at >= lines.size())
        throw MinisignFormatError("the public key has no key line (a minisign public key file is a comment line and a base64 line)");
    if (at + 1 != lines.size())
        throw MinisignFormatError("the public key has more lines than a minisign public key file (a comment line and a base64 line)");
    const auto bytes = decodeBase64(lines[at], "its key line");
    if (bytes.size() != 42)
        throw MinisignFormatError("its key line decodes to " + std::to_string(bytes.size()) + " bytes, not the 42 of a minisign public key");
    if (bytes[0] != 'E' || bytes[1] != 'd')
        throw MinisignFormatError("its key line is not an Ed25519 minisign key (it does not start with \"Ed\")");
    MinisignPublicKey key;
    std::memcpy(key.keyId.data(), bytes.data() + 2, 8);
    std::memcpy(key.key.data(), bytes.data() + 10, 32);
    return key;
}

MinisignSignature parseMinisignSignature(std::string_view text)
{
    const auto lines = linesOf(text, "the signature");
    if (lines.size() != 4)
        throw MinisignFormatError("the signature has " + std::to_string(lines.size()) +
                                  " lines; a minisign signature has 4 (untrusted comment, signature, trusted comment, comment signature)");
    if (!lines[0].starts_with(untrustedPrefix))
        throw MinisignFormatError("the signature's first line does not start with \"untrusted comment:\"");
    if (!lines[2].starts_with(trustedPrefix))
        throw MinisignFormatError("the signature's third line does not start with \"trusted comment: \"");
    const auto sig = decodeBase64(lines[1], "its signature line");
    if (sig.size() != 74)
        throw MinisignFormatError("its signature line decodes to " + std::to_string(sig.size()) + " bytes, not the 74 of a minisign signature");
    MinisignSignature out;
    if (sig[0] == 'E' && sig[1] == 'D')
        out.prehashed = true;
    else if (sig[0] == 'E' && sig[1] == 'd')
        out.prehashed = false;
    else
        throw MinisignFormatError("its signature line names algorithm \"" + std::string(sig.begin(), sig.begin() + 2) +
                                  "\"; minisign's are \"ED\" and \"Ed\" (Ed25519)");
    std::memcpy(out.keyId.data(), sig.data() + 2, 8);
    std::memcpy(out.signature.data(), sig.data() + 10, 64);
    out.trustedComment = std::string(lines[2].substr(trustedPrefix.size()));
    const auto commentSig = decodeBase64(lines[3], "its comment signature line");
    if (commentSig.size() != 64)
        throw MinisignFormatError("its comment signature line decodes to " + std::to_string(commentSig.size()) + " bytes, not 64");
    std::memcpy(out.commentSignature.data(), commentSig.data(), 64);
    return out;
}

std::string keyIdText(const MinisignKeyId& id)
{
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string text;
    for (auto byte = id.rbegin(); byte != id.rend(); ++byte) {
        text.push_back(digits[*byte >> 4]);
        text.push_back(digits[*byte & 0x0f]);
    }
    // minisign prints it with %PRIX64: no leading zeros.
    const auto first = text.find_first_not_of('0');
    return first == std::string::npos ? "0" : text.substr(first);
}

std::optional<std::string> trustedCommentVersion(std::string_view comment)
{
    constexpr std::string_view prefix = "version=";
    while (!comment.empty()) {
        const auto start = comment.find_first_not_of(" \t");
        if (start == std::string_view::npos)
            break;
        comment.remove_prefix(start);
        const auto end = comment.find_first_of(" \t");
        const std::string_view word = comment.substr(0, end);
        if (word.starts_with(prefix) && word.size() > prefix.size())
            return std::string(word.substr(prefix.size()));
        comment = end == std::string_view::npos ? std::string_view() : comment.substr(end);
    }
    return std::nullopt;
}

bool ed25519Verify(const MinisignPublicKey& key, const std::uint8_t* signature, const void* message, std::size_t size)
{
    std::unique_ptr<EVP_PKEY, EvpPkeyFree> pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.key.data(), key.key.size()));
    std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx(EVP_MD_CTX_new());
    if (!pkey || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1)
        throw std::runtime_error("OpenSSL could not set up an Ed25519 verification");
    return EVP_DigestVerify(ctx.get(), signature, 64, static_cast<const unsigned char*>(message), size) == 1;
}

bool trustedCommentVerifies(const MinisignSignature& signature, const MinisignPublicKey& key)
{
    std::string signedText(reinterpret_cast<const char*>(signature.signature.data()), signature.signature.size());
    signedText += signature.trustedComment;
    return ed25519Verify(key, signature.commentSignature.data(), signedText.data(), signedText.size());
}

bool fileSignatureVerifies(const MinisignSignature& signature, const MinisignPublicKey& key, const void* data, std::size_t size)
{
    return ed25519Verify(key, signature.signature.data(), data, size);
}

Blake2b512::Blake2b512() : context_(EVP_MD_CTX_new())
{
    if (!context_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(context_), EVP_blake2b512(), nullptr) != 1) {
        EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(context_));
        throw std::runtime_error("OpenSSL could not set up a BLAKE2b-512 digest");
    }
}

Blake2b512::~Blake2b512() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(context_)); }

void Blake2b512::update(const void* data, std::size_t size)
{
    if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(context_), data, size) != 1)
        throw std::runtime_error("OpenSSL BLAKE2b-512 update failed");
}

std::array<std::uint8_t, 64> Blake2b512::finish()
{
    std::array<std::uint8_t, 64> digest{};
    unsigned size = 0;
    if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(context_), digest.data(), &size) != 1 || size != digest.size())
        throw std::runtime_error("OpenSSL BLAKE2b-512 final failed");
    return digest;
}

}  // namespace armdock
