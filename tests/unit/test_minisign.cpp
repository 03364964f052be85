// minisign's formats as the real `minisign` writes them, Ed25519 and
// BLAKE2b-512 through OpenSSL, and the version order min_version uses.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "../support/minisign_tool.hpp"
#include "core/minisign.hpp"
#include "core/version_order.hpp"

namespace armdock::test {
namespace {

namespace fs = std::filesystem;

class MinisignTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        dir = fs::path(::testing::TempDir()) / ("armdock-minisign-" + std::to_string(::getpid()));
        fs::remove_all(dir);
        fs::create_directories(dir);
        key = makeMinisignKey(dir, "release");
        file = dir / "dockerd";
        std::ofstream(file, std::ios::binary) << std::string(300000, 'x') << "the engine";
    }
    void TearDown() override { fs::remove_all(dir); }

    std::array<std::uint8_t, 64> blake2bOf(const std::string& bytes)
    {
        Blake2b512 digest;
        digest.update(bytes.data(), bytes.size());
        return digest.finish();
    }

    fs::path dir, file;
    MinisignKeyPair key;
};

TEST_F(MinisignTest, ReadsTheKeyMinisignWritesAndNamesItAsMinisignDoes)
{
    const MinisignPublicKey parsed = parseMinisignPublicKey(readText(key.publicKey));
    ASSERT_FALSE(key.keyId.empty());
    EXPECT_EQ(keyIdText(parsed.keyId), key.keyId);
    // minisign's %PRIX64: no leading zeros.
    EXPECT_EQ(keyIdText(MinisignKeyId{0x18, 0x3a, 0x14, 0xce, 0x1d, 0x04, 0x4f, 0x05}), "54F041DCE143A18");
    EXPECT_EQ(keyIdText(MinisignKeyId{}), "0");
    // The base64 line alone (minisign -P's form) is the same key.
    const std::string text = readText(key.publicKey);
    const std::string line = text.substr(text.find('\n') + 1);
    EXPECT_EQ(parseMinisignPublicKey(line).key, parsed.key);
}

TEST_F(MinisignTest, APrehashedSignatureVerifiesOverTheFilesBlake2bAndItsCommentOverTheSignature)
{
    const fs::path sig = signWithMinisign(key, file, "version=24.0.7 build=abc");
    const MinisignSignature s = parseMinisignSignature(readText(sig));
    const MinisignPublicKey k = parseMinisignPublicKey(readText(key.publicKey));
    EXPECT_TRUE(s.prehashed);
    EXPECT_EQ(s.keyId, k.keyId);
    EXPECT_EQ(s.trustedComment, "version=24.0.7 build=abc");
    EXPECT_TRUE(trustedCommentVerifies(s, k));
    const std::string bytes = readText(file);
    auto digest = blake2bOf(bytes);
    EXPECT_TRUE(fileSignatureVerifies(s, k, digest.data(), digest.size()));
    digest = blake2bOf(bytes + "!");
    EXPECT_FALSE(fileSignatureVerifies(s, k, digest.data(), digest.size()));
    // An altered trusted comment no longer verifies.
    MinisignSignature altered = s;
    altered.trustedComment = "version=99.0.0 build=abc";
    EXPECT_FALSE(trustedCommentVerifies(altered, k));
}

TEST_F(MinisignTest, ALegacySignatureVerifiesOverTheFileItself)
{
    const fs::path sig = signWithMinisign(key, file, "", true);
    const MinisignSignature s = parseMinisignSignature(readText(sig));
    const MinisignPublicKey k = parseMinisignPublicKey(readText(key.publicKey));
    EXPECT_FALSE(s.prehashed);
    const std::string bytes = readText(file);
    EXPECT_TRUE(fileSignatureVerifies(s, k, bytes.data(), bytes.size()));
    EXPECT_FALSE(fileSignatureVerifies(s, k, bytes.data(), bytes.size() - 1));
    EXPECT_TRUE(trustedCommentVerifies(s, k));
}

TEST_F(MinisignTest, AnotherKeyDoesNotVerify)
{
    const MinisignKeyPair other = makeMinisignKey(dir, "other");
    const MinisignSignature s = parseMinisignSignature(readText(signWithMinisign(other, file, "version=1")));
    const MinisignPublicKey k = parseMinisignPublicKey(readText(key.publicKey));
    EXPECT_NE(s.keyId, k.keyId);
    EXPECT_FALSE(trustedCommentVerifies(s, k));
    const auto digest = blake2bOf(readText(file));
    EXPECT_FALSE(fileSignatureVerifies(s, k, digest.data(), digest.size()));
}

TEST_F(MinisignTest, TextsThatAreNotMinisignsAreNamed)
{
    const std::string good = readText(signWithMinisign(key, file, "version=1"));
    auto errorOf = [](const std::string& text) -> std::string {
        try {
            parseMinisignSignature(text);
        } catch (const MinisignFormatError& e) {
            return e.what();
        }
        return "";
    };
    EXPECT_NE(errorOf(good.substr(0, good.rfind("trusted comment"))).find("has 2 lines; a minisign signature has 4"), std::string::npos);
    EXPECT_NE(errorOf("").find("has 0 lines"), std::string::npos);
    std::string badBase64 = good;
    badBase64[good.find('\n') + 5] = '*';
    EXPECT_NE(errorOf(badBase64).find("is not base64 (it holds '*')"), std::string::npos) << errorOf(badBase64);
    std::string shortLine = good;
    const auto lineStart = good.find('\n') + 1;
    shortLine.erase(lineStart, 4);
    EXPECT_NE(errorOf(shortLine).find("decodes to 71 bytes, not the 74"), std::string::npos) << errorOf(shortLine);
    EXPECT_NE(errorOf(readText(key.publicKey)).find("has 2 lines"), std::string::npos);
    EXPECT_NE(errorOf(std::string(5000, 'a')).find("5000 bytes long"), std::string::npos);
    std::string noTrusted = good;
    noTrusted.replace(noTrusted.find("\ntrusted comment: ") + 1, 17, "comment: ");
    EXPECT_NE(errorOf(noTrusted).find("third line does not start with \"trusted comment: \""), std::string::npos);
    EXPECT_THROW(parseMinisignPublicKey("untrusted comment: x\nAAAA\n"), MinisignFormatError);
    // A padded last group with bits no encoder writes.
    std::string strayBits = good;
    const auto padding = good.find("=\n");
    ASSERT_NE(padding, std::string::npos);
    strayBits[padding - 1] = strayBits[padding - 1] == 'B' ? 'C' : 'B';
    EXPECT_NE(errorOf(strayBits).find("stray bits"), std::string::npos) << errorOf(strayBits);
    EXPECT_THROW(parseMinisignPublicKey("untrusted comment: x\n"), MinisignFormatError);
}

TEST(TrustedCommentVersion, IsTheVersionWordAnywhereInTheComment)
{
    EXPECT_EQ(trustedCommentVersion("version=24.0.7"), "24.0.7");
    EXPECT_EQ(trustedCommentVersion("timestamp:1796409253\tfile:dockerd\tversion=20.10.24+dfsg1\thashed"), "20.10.24+dfsg1");
    EXPECT_EQ(trustedCommentVersion("timestamp:1796409253\tfile:dockerd\thashed"), std::nullopt);
    EXPECT_EQ(trustedCommentVersion("version= x"), std::nullopt);
    EXPECT_EQ(trustedCommentVersion("myversion=1"), std::nullopt);
}

TEST(VersionOrder, IsDpkgs)
{
    EXPECT_LT(compareVersions("20.10.24+dfsg1", "24.0.5"), 0);
    EXPECT_LT(compareVersions("1.10.3", "1.10.10"), 0);
    EXPECT_LT(compareVersions("1.0~rc1", "1.0"), 0);
    EXPECT_LT(compareVersions("24.0.5", "1:1.0"), 0);
    EXPECT_LT(compareVersions("20.10.24+dfsg1-1", "20.10.24+dfsg1-1+deb12u1"), 0);
    EXPECT_LT(compareVersions("1.10", "1.10.0"), 0);
    EXPECT_EQ(compareVersions("24.0.05", "24.0.5"), 0);
    EXPECT_GT(compareVersions("26.1.5+dfsg1", "26.1.5"), 0);
    EXPECT_GT(compareVersions("1.10a", "1.10"), 0);
    EXPECT_TRUE(isVersionText("20.10.24+dfsg1"));
    EXPECT_TRUE(isVersionText("1:24.0.5~rc1-2"));
    EXPECT_FALSE(isVersionText("v24"));
    EXPECT_FALSE(isVersionText(""));
    EXPECT_FALSE(isVersionText("24 0"));
    EXPECT_FALSE(isVersionText("1x:2"));
    EXPECT_FALSE(isVersionText("1:2:3"));
    EXPECT_FALSE(isVersionText("1234567890:1"));
}

}  // namespace
}  // namespace armdock::test
