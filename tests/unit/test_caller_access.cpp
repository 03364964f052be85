#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/caller_access.hpp"
#include "core/config.hpp"

namespace armdock {
namespace {

namespace fs = std::filesystem;

class CallerAccessTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "armdock-groups-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        groupFile_ = dir_ / "group";
        std::ofstream(groupFile_) << "root:x:0:\n"
                                     "adm:x:4:syslog,alice\n"
                                     "docker-admins:x:1500:bob\n"
                                     "big:x:4000000000:\n";
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string failure(const std::vector<std::string>& names, const fs::path& file)
    {
        try {
            resolveAllowedGroups(names, file);
        } catch (const ConfigError& error) {
            return error.what();
        }
        ADD_FAILURE() << "no error";
        return "";
    }

    fs::path dir_;
    fs::path groupFile_;
};

TEST_F(CallerAccessTest, ResolvesNamesFromTheGivenFile)
{
    EXPECT_EQ(resolveAllowedGroups({"adm", "docker-admins", "big"}, groupFile_),
              (std::vector<gid_t>{4, 1500, 4000000000u}));
    EXPECT_TRUE(resolveAllowedGroups({}, groupFile_).empty());
}

TEST_F(CallerAccessTest, NumericGidsNeedNoFile)
{
    EXPECT_EQ(resolveAllowedGroups({"1001", "0"}, dir_ / "absent"), (std::vector<gid_t>{1001, 0}));
    EXPECT_EQ(resolveAllowedGroups({"adm", "77"}, groupFile_), (std::vector<gid_t>{4, 77}));
}

TEST_F(CallerAccessTest, UnknownGroup)
{
    EXPECT_EQ(failure({"adm", "wheel"}, groupFile_), "agent.allowed_groups: group \"wheel\" is not in " + groupFile_.string()
                                                         + "; add the group or give its numeric gid");
    // (gid_t)-1 is "no group", never a member's gid.
    EXPECT_EQ(failure({"4294967295"}, groupFile_), "agent.allowed_groups: group \"4294967295\" is not in "
                                                       + groupFile_.string() + "; add the group or give its numeric gid");
}

TEST_F(CallerAccessTest, UnreadableGroupFile)
{
    EXPECT_EQ(failure({"adm"}, dir_ / "absent"),
              "agent.allowed_groups: cannot read " + (dir_ / "absent").string() + " (No such file or directory)");
}

TEST(CallerMayCall, RootAndMembers)
{
    std::vector<gid_t> allowed{4, 1500};
    EXPECT_TRUE(callerMayCall(0, 0, {}, {}));
    EXPECT_TRUE(callerMayCall(0, 100, {}, allowed));
    EXPECT_TRUE(callerMayCall(1000, 1500, {}, allowed));
    EXPECT_TRUE(callerMayCall(1000, 1000, {27, 4}, allowed));
    EXPECT_FALSE(callerMayCall(1000, 1000, {27, 100}, allowed));
    EXPECT_FALSE(callerMayCall(1000, 1000, {}, {}));
    EXPECT_FALSE(callerMayCall(65534, 65534, {65534}, allowed));
}

}  // namespace
}  // namespace armdock
