// Signed payloads through the agent ([trust], the Upgrade option
// signature.NAME and allow_downgrade, a drop-in's NAME.minisig), with keys
// and signatures made by the real minisign: a good signature installs; every
// bad one is a named error with nothing changed and Docker not interrupted.
#include <gtest/gtest.h>

#include <unistd.h>

#include "../support/minisign_tool.hpp"
#include "agent_test_fixture.hpp"
#include "core/payload_signature.hpp"

namespace armdock::test {
namespace {

class PayloadSignatureTest : public AgentFixture {
protected:
    std::string extraTables() const override
    {
        std::string toml = "[trust]\nkeys = \"" + (keysDir()).string() + "\"\n";
        if (requireSignature)
            toml += "require_signature = true\n";
        if (!minVersion.empty())
            toml += "min_version = \"" + minVersion + "\"\n";
        return toml;
    }

    void SetUp() override
    {
        AgentFixture::SetUp();
        signer = makeMinisignKey(keysDir(), "release");
        // The secret key must not lie among the trusted ones: move it out.
        const fs::path secret = dir / "signing" / "release.key";
        fs::create_directories(secret.parent_path());
        fs::rename(signer.secretKey, secret);
        signer.secretKey = secret;
    }

    fs::path keysDir() const { return dir / "trusted.d"; }

    void reconfigure()
    {
        config = makeConfig();
    }

    // The option map of an upgrade with `signature` as signature.docker.
    Options signed_(const fs::path& signature, Options options = {}) const
    {
        options["signature.docker"] = readText(signature);
        return options;
    }

    // The upgrade is refused before it starts, with an error containing `expected`.
    void expectRefused(const fs::path& src, const Options& options, const std::string& expected)
    {
        try {
            agent->upgrade(Files{{"docker", src.string()}}, options);
            waitIdle();
            ADD_FAILURE() << "the upgrade was not refused; it ended " << toString(agent->status().lastResult) << ": "
                          << agent->status().lastError;
        } catch (const AgentError& e) {
            EXPECT_EQ(e.kind(), ErrorKind::PayloadRejected) << e.what();
            EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
        }
        expectNothingChanged();
    }

    // The upgrade starts and is rejected while staging (the bytes are not what was signed).
    void expectRejectedWhileStaging(const fs::path& src, const Options& options, const std::string& expected)
    {
        agent->upgrade(Files{{"docker", src.string()}}, options);
        waitIdle();
        EXPECT_EQ(agent->status().lastResult, TransactionResult::Rejected) << agent->status().lastError;
        EXPECT_NE(agent->status().lastError.find(expected), std::string::npos) << agent->status().lastError;
        expectNothingChanged();
    }

    void expectNothingChanged()
    {
        EXPECT_TRUE(units.calls.empty()) << "Docker was interrupted";
        EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
        EXPECT_TRUE(agent->listBackups().empty());
        expectNoLeftovers();
    }

    // What the .reason files beside refused drop-ins say.
    std::string rejectedReasons() const
    {
        std::string reasons;
        for (const auto& e : fs::directory_iterator(dir / "state/rejected"))
            if (e.path().extension() == ".reason")
                reasons += readText(e.path());
        return reasons;
    }

    MinisignKeyPair signer;
    bool requireSignature = false;
    std::string minVersion;
};

TEST_F(PayloadSignatureTest, AGoodSignatureInstallsTheEngine)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, signed_(signWithMinisign(signer, src, "version=2.0.0")));
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
}

TEST_F(PayloadSignatureTest, ALegacySignatureInstallsTheEngineToo)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, signed_(signWithMinisign(signer, src, "", true)));
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
}

TEST_F(PayloadSignatureTest, ASignatureByAKeyThatIsNotTrustedIsRefused)
{
    startAgent();
    const MinisignKeyPair stranger = makeMinisignKey(dir / "elsewhere", "stranger");
    const fs::path src = newEngine("engine-v2", "2.0.0");
    expectRefused(src, signed_(signWithMinisign(stranger, src, "version=2.0.0")),
                  "is made with key " + stranger.keyId + ", which is not trusted: " + keysDir().string() + " holds " + signer.keyId +
                      " (release.pub)");
}

TEST_F(PayloadSignatureTest, AFileChangedAfterItWasSignedIsRejectedWhileStaging)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    const fs::path sig = signWithMinisign(signer, src, "version=2.0.0");
    std::ofstream(src, std::ios::app | std::ios::binary) << "tampered";
    expectRejectedWhileStaging(src, signed_(sig), "payload docker: its signature by key " + signer.keyId);
    EXPECT_NE(agent->status().lastError.find("is not for this file"), std::string::npos) << agent->status().lastError;
}

TEST_F(PayloadSignatureTest, ATamperedFileIsRejectedInTheLegacyFormToo)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    const fs::path sig = signWithMinisign(signer, src, "", true);
    std::ofstream(src, std::ios::app | std::ios::binary) << "tampered";
    expectRejectedWhileStaging(src, signed_(sig), "is not for this file");
}

TEST_F(PayloadSignatureTest, TheSignatureOfAnotherFileIsRejectedWhileStaging)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    const fs::path other = newEngine("engine-v3", "3.0.0");
    const fs::path sig = signWithMinisign(signer, other, "");  // minisign's own comment names the file
    expectRejectedWhileStaging(src, signed_(sig), "file:engine-v3");
}

TEST_F(PayloadSignatureTest, ATruncatedOrMalformedSignatureIsRefused)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    const std::string text = readText(signWithMinisign(signer, src, "version=2.0.0"));
    Options truncated{{"signature.docker", text.substr(0, text.size() / 2)}};
    expectRefused(src, truncated, "payload docker: the signature (option signature.docker) is not a minisign signature: ");
    std::string garbled = text;
    garbled[text.find('\n') + 10] = '#';
    expectRefused(src, Options{{"signature.docker", garbled}}, "is not base64 (it holds '#')");
    expectRefused(src, Options{{"signature.docker", readText(signer.publicKey)}}, "is not a minisign signature");
}

TEST_F(PayloadSignatureTest, AnAlteredTrustedCommentIsRefused)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    std::string text = readText(signWithMinisign(signer, src, "version=2.0.0"));
    text.replace(text.find("version=2.0.0"), 13, "version=9.0.0");
    expectRefused(src, Options{{"signature.docker", text}}, "its trusted comment \"version=9.0.0\" is not signed by key " + signer.keyId);
}

TEST_F(PayloadSignatureTest, AMissingSignatureIsRefusedWhenOneIsRequired)
{
    requireSignature = true;
    reconfigure();
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    expectRefused(src, Options{}, "payload docker has no signature, and [trust] require_signature is on");
}

TEST_F(PayloadSignatureTest, WithoutATrustedKeyASignatureIsRefused)
{
    fs::remove(signer.publicKey);
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    expectRefused(src, signed_(signWithMinisign(signer, src, "version=2.0.0")), keysDir().string() + " holds no key");
}

TEST_F(PayloadSignatureTest, AnOlderSignedEngineNeedsAllowDowngrade)
{
    minVersion = "2.0.0";
    reconfigure();
    startAgent();
    const fs::path old = newEngine("engine-v1-9", "1.9.0");
    const fs::path sig = signWithMinisign(signer, old, "version=1.9.0");
    expectRefused(old, signed_(sig), "is for version 1.9.0, older than [trust] min_version is 2.0.0");
    agent->upgrade(Files{{"docker", old.string()}}, signed_(sig, Options{{"allow_downgrade", true}}));
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
}

TEST_F(PayloadSignatureTest, WithMinVersionASignatureMustNameItsVersion)
{
    minVersion = "2.0.0";
    reconfigure();
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    expectRefused(src, signed_(signWithMinisign(signer, src, "")), "names no version");
    agent->upgrade(Files{{"docker", src.string()}}, signed_(signWithMinisign(signer, src, "version=2.0.0")));
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
}

TEST_F(PayloadSignatureTest, ADropinsSignatureBesideItIsChecked)
{
    requireSignature = true;
    reconfigure();
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    fs::create_directories(dir / "incoming");
    fs::copy_file(src, dir / "incoming/docker");
    signWithMinisign(signer, dir / "incoming/docker", "version=2.0.0");
    ASSERT_FALSE(reload().empty());
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
}

TEST_F(PayloadSignatureTest, ADropinWithAStrangersSignatureIsMovedAsideWithItsReason)
{
    startAgent();
    const MinisignKeyPair stranger = makeMinisignKey(dir / "elsewhere", "stranger");
    const fs::path src = newEngine("engine-v2", "2.0.0");
    fs::create_directories(dir / "incoming");
    fs::copy_file(src, dir / "incoming/docker");
    signWithMinisign(stranger, dir / "incoming/docker", "version=2.0.0");
    EXPECT_THROW(reload(), AgentError);
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Rejected);
    EXPECT_NE(agent->status().lastError.find("the signature (" + (dir / "incoming/docker.minisig").string() + ") is made with key " +
                                             stranger.keyId),
              std::string::npos)
        << agent->status().lastError;
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
    EXPECT_NE(rejectedReasons().find("is made with key " + stranger.keyId + ", which is not trusted"), std::string::npos) << rejectedReasons();
    expectNothingChanged();
}

TEST_F(PayloadSignatureTest, ASignatureWithoutItsBinaryInTheDropinFolderIsRefused)
{
    startAgent();
    fs::create_directories(dir / "incoming");
    std::ofstream(dir / "incoming/docker.minisig") << "untrusted comment: x\n";
    EXPECT_EQ(reload(), "");
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
    EXPECT_NE(rejectedReasons().find("signature file without its binary 'docker'"), std::string::npos) << rejectedReasons();
    expectNothingChanged();
}

TEST_F(PayloadSignatureTest, AnEmptySignatureInTheDropinFolderRefusesItsBinary)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    fs::create_directories(dir / "incoming");
    fs::copy_file(src, dir / "incoming/docker");
    std::ofstream(dir / "incoming/docker.minisig") << "\n";
    EXPECT_EQ(reload(), "");
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
    EXPECT_NE(rejectedReasons().find("its signature file docker.minisig was refused (is empty; a minisign signature (minisign -S) has 4 lines)"),
              std::string::npos)
        << rejectedReasons();
    expectNothingChanged();
}

TEST_F(PayloadSignatureTest, MinVersionIsTheEnginesAndAnotherPayloadNeedsNoVersion)
{
    minVersion = "2.0.0";
    reconfigure();
    startAgent();
    const fs::path init = dir / "src/dockerinit-v2";
    makeEngineFile(init, "init-v2");
    agent->upgrade(Files{{"dockerinit", init.string()}}, Options{{"signature.dockerinit", readText(signWithMinisign(signer, init, ""))}});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
}

TEST_F(PayloadSignatureTest, TwoKeyFilesWithOneIdAreBothTried)
{
    // A stale copy of another key under the same id, sorted first.
    const MinisignKeyPair other = makeMinisignKey(dir / "elsewhere", "other");
    std::string stale = readText(other.publicKey);
    const std::string own = readText(signer.publicKey);
    const std::string ownLine = own.substr(own.find('\n') + 1);
    const std::string otherLine = stale.substr(stale.find('\n') + 1);
    // The signer's "Ed", key id and first two key bytes (16 base64 characters: 12 bytes), the other's 30 key bytes after them.
    std::string mixed = ownLine.substr(0, 16) + otherLine.substr(16);
    std::ofstream(keysDir() / "a-stale.pub") << "untrusted comment: stale\n" << mixed;
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, signed_(signWithMinisign(signer, src, "version=2.0.0")));
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
}

TEST(TrustedKeysFolder, SkipsWhatIsNotAKeyAndSaysSo)
{
    const fs::path dir = fs::path(::testing::TempDir()) / ("armdock-keys-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    const MinisignKeyPair good = makeMinisignKey(dir, "good");
    fs::remove(good.secretKey);
    std::ofstream(dir / "broken.pub") << "untrusted comment: x\nnot a key\n";
    std::ofstream(dir / "notes.txt") << "ignored";
    const TrustedKeys keys = readTrustedKeys(dir);
    ASSERT_EQ(keys.keys.size(), 1u);
    EXPECT_EQ(keyIdText(keys.keys[0].key.keyId), good.keyId);
    ASSERT_EQ(keys.unreadable.size(), 1u);
    EXPECT_NE(keys.unreadable[0].find((dir / "broken.pub").string()), std::string::npos);
    EXPECT_TRUE(readTrustedKeys(dir / "missing").keys.empty());
    fs::remove_all(dir);
}

}  // namespace
}  // namespace armdock::test
