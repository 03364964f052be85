#include <gtest/gtest.h>

#include <string>

#include "core/config.hpp"
#include "core/errors.hpp"
#include "core/upgrade_request.hpp"

namespace armdock {
namespace {

const std::string digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

std::string failure(const std::map<std::string, std::string>& files, const std::map<std::string, OptionValue>& options)
{
    try {
        parseUpgradeRequest(files, options, defaultConfig());
    } catch (const AgentError& error) {
        EXPECT_EQ(error.kind(), ErrorKind::InvalidArgument) << error.what();
        return error.what();
    }
    ADD_FAILURE() << "no error";
    return "";
}

TEST(UpgradeRequest, FilesAndEveryOption)
{
    std::string upper = digest;
    for (auto& c : upper)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    UpgradeRequest request = parseUpgradeRequest(
        {{"docker", "/tmp/new/docker"}, {"dockerinit", "/tmp/new/dockerinit"}},
        {{"sha256.docker", upper}, {"dry_run", true}, {"health_timeout_sec", std::uint32_t{120}}}, defaultConfig());
    EXPECT_EQ(request.files.at("docker"), "/tmp/new/docker");
    EXPECT_EQ(request.files.at("dockerinit"), "/tmp/new/dockerinit");
    EXPECT_EQ(request.sha256, (std::map<std::string, std::string>{{"docker", digest}}));
    EXPECT_TRUE(request.dryRun);
    EXPECT_EQ(request.healthTimeoutSec, 120u);
}

TEST(UpgradeRequest, Defaults)
{
    UpgradeRequest request = parseUpgradeRequest({{"dockerinit", "/srv/dockerinit"}}, {}, defaultConfig());
    EXPECT_EQ(request.files.size(), 1u);
    EXPECT_TRUE(request.sha256.empty());
    EXPECT_FALSE(request.dryRun);
    EXPECT_EQ(request.healthTimeoutSec, std::nullopt);
}

TEST(UpgradeRequest, FileErrors)
{
    EXPECT_EQ(failure({}, {}), "no files given; map at least one payload (docker, dockerinit) to a source path");
    EXPECT_EQ(failure({{"dockerd", "/srv/dockerd"}}, {}),
              "unknown payload \"dockerd\"; the configured payloads are docker, dockerinit");
    EXPECT_EQ(failure({{"docker", "new/docker"}}, {}),
              "payload docker: source path \"new/docker\" is not absolute; give the full path starting with /");
    EXPECT_EQ(failure({{"docker", ""}}, {}),
              "payload docker: source path \"\" is not absolute; give the full path starting with /");
}

TEST(UpgradeRequest, OptionErrors)
{
    const std::map<std::string, std::string> files{{"docker", "/srv/docker"}};
    EXPECT_EQ(failure(files, {{"force", true}}),
              "unknown option \"force\"; known options are sha256.<payload>, signature.<payload>, allow_downgrade, dry_run and health_timeout_sec");
    EXPECT_EQ(failure(files, {{"dry_run", std::string("yes")}}), "option dry_run must be a boolean (b), got a value of type s");
    EXPECT_EQ(failure(files, {{"health_timeout_sec", UnsupportedOptionType{"i"}}}),
              "option health_timeout_sec must be an unsigned integer (u), got a value of type i");
    EXPECT_EQ(failure(files, {{"health_timeout_sec", std::uint32_t{0}}}),
              "option health_timeout_sec must be at least 1 second, got 0");
    EXPECT_EQ(failure(files, {{"sha256.docker", true}}), "option sha256.docker must be a string (s), got a value of type b");
    EXPECT_EQ(failure(files, {{"sha256.dockerinit", digest}}),
              "option sha256.dockerinit is for payload \"dockerinit\", which is not among the files given");
    EXPECT_EQ(failure(files, {{"sha256.docker", digest.substr(1)}}),
              "option sha256.docker must be 64 hex digits (a SHA-256), got \"" + digest.substr(1) + "\"");
    EXPECT_EQ(failure(files, {{"sha256.docker", "sha256:" + digest.substr(7)}}),
              "option sha256.docker must be 64 hex digits (a SHA-256), got \"sha256:" + digest.substr(7) + "\"");
}

TEST(UpgradeRequest, SignatureAndAllowDowngrade)
{
    const std::string minisig = "untrusted comment: x\nRUS...\ntrusted comment: version=1\nAAAA\n";
    UpgradeRequest request =
        parseUpgradeRequest({{"docker", "/srv/docker"}}, {{"signature.docker", minisig}, {"allow_downgrade", true}}, defaultConfig());
    EXPECT_EQ(request.signatures, (std::map<std::string, std::string>{{"docker", minisig}}));
    EXPECT_TRUE(request.allowDowngrade);
    EXPECT_FALSE(parseUpgradeRequest({{"docker", "/srv/docker"}}, {}, defaultConfig()).allowDowngrade);
    const std::map<std::string, std::string> files{{"docker", "/srv/docker"}};
    EXPECT_EQ(failure(files, {{"signature.dockerinit", minisig}}),
              "option signature.dockerinit is for payload \"dockerinit\", which is not among the files given");
    EXPECT_EQ(failure(files, {{"signature.docker", true}}), "option signature.docker must be a string (s), got a value of type b");
    EXPECT_EQ(failure(files, {{"signature.docker", std::string()}}),
              "option signature.docker must be the text of the payload's .minisig file (1 to 4096 bytes), got 0 bytes");
    EXPECT_EQ(failure(files, {{"signature.docker", std::string(5000, 'a')}}),
              "option signature.docker must be the text of the payload's .minisig file (1 to 4096 bytes), got 5000 bytes");
    EXPECT_EQ(failure(files, {{"allow_downgrade", std::uint32_t{1}}}), "option allow_downgrade must be a boolean (b), got a value of type u");
}

std::string descriptorFailure(const std::map<std::string, std::string>& labels, const std::map<std::string, OptionValue>& options)
{
    try {
        parseUpgradeRequest(labels, options, defaultConfig(), SourceForm::Descriptors);
    } catch (const AgentError& error) {
        EXPECT_EQ(error.kind(), ErrorKind::InvalidArgument) << error.what();
        return error.what();
    }
    ADD_FAILURE() << "no error";
    return "";
}

TEST(UpgradeRequest, DescriptorsAreLabelledAndSourceOptionsNameThem)
{
    UpgradeRequest request = parseUpgradeRequest({{"docker", "fd:docker"}, {"dockerinit", "fd:dockerinit"}},
                                                 {{"source.docker", std::string("/tmp/new/docker")}, {"sha256.docker", digest}},
                                                 defaultConfig(), SourceForm::Descriptors);
    EXPECT_EQ(request.files.at("docker"), "/tmp/new/docker");
    EXPECT_EQ(request.files.at("dockerinit"), "fd:dockerinit");
    EXPECT_EQ(request.sha256.at("docker"), digest);

    EXPECT_EQ(descriptorFailure({}, {}), "no files given; map at least one payload (docker, dockerinit) to a descriptor");
    EXPECT_EQ(descriptorFailure({{"docker", "fd:docker"}}, {{"source.dockerinit", std::string("/x")}}),
              "option source.dockerinit is for payload \"dockerinit\", which is not among the files given");
    EXPECT_EQ(descriptorFailure({{"docker", "fd:docker"}}, {{"source.docker", true}}),
              "option source.docker must be a string (s), got a value of type b");
    for (const std::string& bad : {std::string(), std::string("/tmp/a\nb"), std::string(4097, 'x')})
        EXPECT_EQ(descriptorFailure({{"docker", "fd:docker"}}, {{"source.docker", bad}}),
                  "option source.docker must be the path the descriptor was opened from (1 to 4096 printable characters)");
    EXPECT_EQ(descriptorFailure({{"docker", "fd:docker"}}, {{"force", true}}),
              "unknown option \"force\"; known options are sha256.<payload>, signature.<payload>, source.<payload>, allow_downgrade, dry_run and health_timeout_sec");
}

TEST(UpgradeRequest, SourceOptionsBelongToDescriptors)
{
    EXPECT_EQ(failure({{"docker", "/srv/docker"}}, {{"source.docker", std::string("/srv/docker")}}),
              "option source.docker names the file behind a descriptor and belongs to UpgradeFds; Upgrade takes the path in files");
}

TEST(UpgradeRequest, PayloadsComeFromTheConfig)
{
    Config config = parseConfig("[[payload]]\nname = \"dockerd\"\npath = \"/usr/sbin/dockerd\"\nengine = true\n", "t.toml");
    EXPECT_EQ(parseUpgradeRequest({{"dockerd", "/srv/dockerd"}}, {}, config).files.size(), 1u);
    try {
        parseUpgradeRequest({{"docker", "/srv/docker"}}, {}, config);
        FAIL() << "no error";
    } catch (const AgentError& error) {
        EXPECT_STREQ(error.what(), "unknown payload \"docker\"; the configured payloads are dockerd");
    }
}

}  // namespace
}  // namespace armdock
