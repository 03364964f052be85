// The bounded cache of D-Bus caller credentials (daemon/dbus/caller_cache.hpp).
#include <gtest/gtest.h>

#include "dbus/caller_cache.hpp"

namespace armdock {
namespace {

struct Creds {
    unsigned uid = 0;
};

TEST(CallerCache, RemembersBySenderAndForgetsTheOldestWhenFull)
{
    CallerCache<Creds> cache(2);
    EXPECT_EQ(cache.find(":1.1"), nullptr);
    cache.remember(":1.1", {1000});
    cache.remember(":1.2", {0});
    ASSERT_NE(cache.find(":1.1"), nullptr);
    EXPECT_EQ(cache.find(":1.1")->uid, 1000u);
    cache.remember(":1.3", {65534});
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_EQ(cache.find(":1.1"), nullptr);  // the first remembered went
    ASSERT_NE(cache.find(":1.3"), nullptr);
    EXPECT_EQ(cache.find(":1.3")->uid, 65534u);
}

TEST(CallerCache, UpdatingAnEntryDoesNotGrowIt)
{
    CallerCache<Creds> cache(2);
    for (int i = 0; i < 10; ++i)
        cache.remember(":1.7", {static_cast<unsigned>(i)});
    EXPECT_EQ(cache.size(), 1u);
    EXPECT_EQ(cache.find(":1.7")->uid, 9u);
    cache.remember(":1.8", {1});
    cache.remember(":1.9", {2});
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_EQ(cache.find(":1.7"), nullptr);
}

TEST(CallerCache, ACallWithoutASenderIsNeverCached)
{
    CallerCache<Creds> cache;
    cache.remember("", {0});
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_EQ(cache.find(""), nullptr);
}

}  // namespace
}  // namespace armdock
