// The pure parsers of docker_client against answers of a real engine.
// The 20.10 bodies were taken from Debian 12's dockerd 20.10.24+dfsg1 (the
// one this repository tests with), trimmed to the fields around the ones we
// read; the 1.10 bodies follow the 1.22 API reference (Docker 1.10), which
// has InitSha1 in /info and no "State" in the container list.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "docker/engine_answers.hpp"

namespace armdock {
namespace {

// GET /version, dockerd 20.10.24+dfsg1 (Components trimmed to the engine).
constexpr const char* version2010 = R"J({"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"20.10.24+dfsg1",
"Details":{"ApiVersion":"1.41","Arch":"amd64","BuildTime":"2026-05-07T21:09:36.000000000+00:00","Experimental":"false",
"GitCommit":"5d6db84","GoVersion":"go1.19.8","KernelVersion":"6.18.44-fc-v782","MinAPIVersion":"1.12","Os":"linux"}}],
"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12","GitCommit":"5d6db84","GoVersion":"go1.19.8",
"Os":"linux","Arch":"amd64","KernelVersion":"6.18.44-fc-v782","BuildTime":"2026-05-07T21:09:36.000000000+00:00"})J";

// GET /version, dockerd 20.10.24+dfsg1 of Debian 12 with its Components (Details trimmed).
constexpr const char* version2010Components = R"J({"Platform":{"Name":""},"Components":[
{"Name":"Engine","Version":"20.10.24+dfsg1","Details":{"ApiVersion":"1.41","GitCommit":"5d6db84","Os":"linux"}},
{"Name":"containerd","Version":"1.6.20~ds1","Details":{"GitCommit":"1.6.20~ds1-1+deb12u3"}},
{"Name":"runc","Version":"1.1.5+ds1","Details":{"GitCommit":"1.1.5+ds1-1+deb12u1"}},
{"Name":"docker-init","Version":"0.19.0","Details":{"GitCommit":""}}],
"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12","GitCommit":"5d6db84","Os":"linux","Arch":"amd64"})J";

// GET /version, Docker 1.10.2 on arm64.
constexpr const char* version110 = R"J({"Version":"1.10.2","ApiVersion":"1.22","GitCommit":"c3959b1",
"GoVersion":"go1.5.3","Os":"linux","Arch":"arm64","KernelVersion":"4.4.0","BuildTime":"2016-02-22T21:37:01.000000000+00:00"})J";

// GET /info, dockerd 20.10.24+dfsg1 (trimmed): no InitSha1 any more.
constexpr const char* info2010 = R"J({"ID":"HMGZ:KGRM:7RGE:SQWB:IUPU:IGHO:CGER:CFZG:3CUP:7RTA:ATWN:F3NX","Containers":2,
"ContainersRunning":1,"Driver":"vfs","DriverStatus":null,"DockerRootDir":"/tmp/dksample.gcvL/data",
"ServerVersion":"20.10.24+dfsg1","InitBinary":"docker-init","InitCommit":{"ID":"","Expected":""},
"KernelVersion":"6.18.44-fc-v782","OperatingSystem":"Debian GNU/Linux 12 (bookworm)"})J";

// GET /info, Docker 1.10 (trimmed).
constexpr const char* info110 = R"J({"ID":"7TRN:IPZB:QYBB:VPBQ:UWYJ:KZPY:CVKF:CZAP:DSZW:GFVC:DNOT:2EYH","Containers":1,
"Driver":"aufs","ExecutionDriver":"native-0.2","InitPath":"/usr/lib/docker/dockerinit",
"InitSha1":"0F4A5C6E2B1D3E7F8A9B0C1D2E3F4A5B6C7D8E9F","ServerVersion":"1.10.2","KernelVersion":"4.4.0"})J";

// GET /containers/json?all=1, dockerd 20.10.24+dfsg1: one created, one running
// with --restart=always (NetworkSettings trimmed).
constexpr const char* list2010 = R"J([{"Id":"c0080773c1d88033552c28e9a9720837718a924b2c2858b720dfdfb276f3a5d8",
"Names":["/stopped"],"Image":"bb:test","ImageID":"sha256:e437471edbb52e4e18386accf8718c6cf457d7a693243a2340b51d6c6555b53e",
"Command":"/bin/true","Created":1795885317,"Ports":[],"Labels":{},"State":"created","Status":"Created",
"HostConfig":{"NetworkMode":"none"},"NetworkSettings":{"Networks":{"none":{"IPAMConfig":null,"NetworkID":""}}},"Mounts":[]},
{"Id":"6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745","Names":["/sleeper"],"Image":"bb:test",
"ImageID":"sha256:e437471edbb52e4e18386accf8718c6cf457d7a693243a2340b51d6c6555b53e","Command":"/bin/sleep 300",
"Created":1795885316,"Ports":[],"Labels":{},"State":"running","Status":"Up Less than a second",
"HostConfig":{"NetworkMode":"none"},"NetworkSettings":{"Networks":{"none":{"IPAMConfig":null,
"NetworkID":"203fcda75b04822d8b4df8597cae7b7e948827ae2ac123bf5fe51e5a6633ea3e"}}},"Mounts":[]}])J";

// GET /containers/json?all=1, Docker 1.10: "Status" only; a linked container
// shows up under two names.
constexpr const char* list110 = R"J([
{"Id":"8dfafdbc3a40","Names":["/web/db","/db"],"Image":"busybox","Command":"sleep 1000","Created":1455000000,
 "Status":"Up 2 hours","Ports":[],"Labels":{},"SizeRw":0,"SizeRootFs":0},
{"Id":"9cd87474be90","Names":["/paused"],"Image":"busybox","Command":"sleep 1000","Created":1455000001,
 "Status":"Up 5 minutes (Paused)","Ports":[],"Labels":{}},
{"Id":"3176a2479c92","Names":["/gone"],"Image":"busybox","Command":"true","Created":1455000002,
 "Status":"Exited (0) 3 minutes ago","Ports":[],"Labels":{}},
{"Id":"4cb07b47f9fb","Names":["/new"],"Image":"busybox","Command":"true","Created":1455000003,
 "Status":"Created","Ports":[],"Labels":{}},
{"Id":"5cb07b47f9fb","Names":["/flapping"],"Image":"busybox","Command":"false","Created":1455000004,
 "Status":"Restarting (1) 2 seconds ago","Ports":[],"Labels":{}}])J";

// GET /containers/{id}/json, dockerd 20.10.24+dfsg1, run with --restart=always
// (HostConfig trimmed).
constexpr const char* inspect2010 = R"J({"Id":"6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745",
"Created":"2026-11-28T17:01:56.608566227Z","Path":"/bin/sleep","Args":["300"],"State":{"Status":"running","Running":true,
"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":5489,"ExitCode":0,"Error":"",
"StartedAt":"2026-11-28T17:01:57.109940579Z","FinishedAt":"0001-01-01T00:00:00Z"},"Name":"/sleeper","RestartCount":0,
"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"json-file","Config":{}},"NetworkMode":"none",
"PortBindings":{},"RestartPolicy":{"Name":"always","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":""}})J";

// GET /containers/{id}/json, Docker 1.10 without --restart: Name is "".
constexpr const char* inspect110Default = R"J({"Id":"8dfafdbc3a40","State":{"Status":"running","Running":true,"Pid":4711},
"Name":"/db","HostConfig":{"NetworkMode":"default","RestartPolicy":{"Name":"","MaximumRetryCount":0}}})J";

TEST(DockerParsers, VersionOfRealDockerd2010)
{
    EXPECT_EQ(parseVersionBody(version2010), "20.10.24+dfsg1");
}

TEST(DockerParsers, VersionOfDocker110)
{
    EXPECT_EQ(parseVersionBody(version110), "1.10.2");
}

TEST(DockerParsers, VersionRejectsMalformed)
{
    EXPECT_THROW(parseVersionBody(""), std::invalid_argument);
    EXPECT_THROW(parseVersionBody("OK"), std::invalid_argument);
    EXPECT_THROW(parseVersionBody(R"({"Version":)"), std::invalid_argument);
    EXPECT_THROW(parseVersionBody(R"(["1.10.2"])"), std::invalid_argument);
    EXPECT_THROW(parseVersionBody(R"({"ApiVersion":"1.41"})"), std::invalid_argument);
    EXPECT_THROW(parseVersionBody(R"({"Version":1.10})"), std::invalid_argument);
    EXPECT_THROW(parseVersionBody(R"({"Version":""})"), std::invalid_argument);
    EXPECT_THROW(parseVersionBody(R"({"message":"client version 1.99 is too new. Maximum supported API version is 1.41"})"),
                 std::invalid_argument);
}

TEST(DockerParsers, ComponentsOfRealDockerd2010)
{
    EXPECT_EQ(parseComponentsBody(version2010Components),
              (std::vector<ComponentVersion>{{"containerd", "1.6.20~ds1"}, {"runc", "1.1.5+ds1"}, {"docker-init", "0.19.0"}}));
    EXPECT_EQ(parseVersionBody(version2010Components), "20.10.24+dfsg1");
    // The engine alone (containerd out of reach), and Docker 1.10, which has no Components.
    EXPECT_TRUE(parseComponentsBody(version2010).empty());
    EXPECT_TRUE(parseComponentsBody(version110).empty());
    EXPECT_TRUE(parseComponentsBody(R"({"Version":"1.10.2","Components":null})").empty());
}

TEST(DockerParsers, ComponentsRejectsMalformed)
{
    EXPECT_THROW(parseComponentsBody(""), std::invalid_argument);
    EXPECT_THROW(parseComponentsBody("[]"), std::invalid_argument);
    EXPECT_THROW(parseComponentsBody(R"({"Components":{"Name":"runc"}})"), std::invalid_argument);
    EXPECT_THROW(parseComponentsBody(R"({"Components":["runc"]})"), std::invalid_argument);
    EXPECT_THROW(parseComponentsBody(R"({"Components":[{"Name":"runc"}]})"), std::invalid_argument);
    EXPECT_THROW(parseComponentsBody(R"({"Components":[{"Name":"runc","Version":1.1}]})"), std::invalid_argument);
}

TEST(DockerParsers, InitSha1AbsentInModernInfo)
{
    EXPECT_EQ(parseInitSha1Body(info2010), std::nullopt);
}

TEST(DockerParsers, InitSha1OfDocker110)
{
    EXPECT_EQ(parseInitSha1Body(info110), "0F4A5C6E2B1D3E7F8A9B0C1D2E3F4A5B6C7D8E9F");
}

TEST(DockerParsers, LiveRestoreAndSwarmOfDockerd2010)
{
    // The two fields of GET /info as dockerd 20.10 sends them.
    const LiveRestoreInfo off = parseLiveRestoreInfo(
        R"J({"Swarm":{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,"Error":"","RemoteManagers":null},"LiveRestoreEnabled":false})J");
    EXPECT_FALSE(off.enabled);
    EXPECT_FALSE(off.swarm);
    const LiveRestoreInfo on = parseLiveRestoreInfo(R"J({"Swarm":{"LocalNodeState":"inactive"},"LiveRestoreEnabled":true})J");
    EXPECT_TRUE(on.enabled);
    EXPECT_FALSE(on.swarm);
    EXPECT_TRUE(parseLiveRestoreInfo(R"J({"Swarm":{"LocalNodeState":"active"},"LiveRestoreEnabled":true})J").swarm);
    EXPECT_TRUE(parseLiveRestoreInfo(R"J({"Swarm":{"LocalNodeState":"pending"}})J").swarm);
    // Docker 1.10 knows neither.
    const LiveRestoreInfo old = parseLiveRestoreInfo(info110);
    EXPECT_FALSE(old.enabled);
    EXPECT_FALSE(old.swarm);
    EXPECT_THROW(parseLiveRestoreInfo(R"J({"LiveRestoreEnabled":"yes"})J"), std::invalid_argument);
    EXPECT_THROW(parseLiveRestoreInfo("[]"), std::invalid_argument);
}

TEST(DockerParsers, InspectPid)
{
    EXPECT_EQ(parseInspectPid(R"J({"State":{"Status":"running","Running":true,"Pid":4242}})J"), 4242);
    EXPECT_EQ(parseInspectPid(R"J({"State":{"Status":"exited","Running":false,"Pid":0}})J"), 0);
    EXPECT_EQ(parseInspectPid(R"J({"Id":"x"})J"), 0);
    EXPECT_THROW(parseInspectPid(R"J({"State":{"Pid":-3}})J"), std::invalid_argument);
    EXPECT_THROW(parseInspectPid(R"J({"State":{"Pid":"4242"}})J"), std::invalid_argument);
}

TEST(DockerParsers, InitSha1EmptyOrNullMeansNotReported)
{
    EXPECT_EQ(parseInitSha1Body(R"({"InitSha1":""})"), std::nullopt);
    EXPECT_EQ(parseInitSha1Body(R"({"InitSha1":null})"), std::nullopt);
}

TEST(DockerParsers, InitSha1RejectsMalformed)
{
    EXPECT_THROW(parseInitSha1Body("not json"), std::invalid_argument);
    EXPECT_THROW(parseInitSha1Body("[]"), std::invalid_argument);
    EXPECT_THROW(parseInitSha1Body(R"({"InitSha1":42})"), std::invalid_argument);
}

TEST(DockerParsers, ContainerListOfRealDockerd2010)
{
    auto list = parseContainerList(list2010);
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].id, "c0080773c1d88033552c28e9a9720837718a924b2c2858b720dfdfb276f3a5d8");
    EXPECT_EQ(list[0].name, "stopped");
    EXPECT_EQ(list[0].state, "created");
    EXPECT_EQ(list[0].restartPolicy, "");  // the list does not carry it
    EXPECT_EQ(list[1].id, "6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745");
    EXPECT_EQ(list[1].name, "sleeper");
    EXPECT_EQ(list[1].state, "running");
}

TEST(DockerParsers, ContainerListOfDocker110DerivesStateFromStatus)
{
    auto list = parseContainerList(list110);
    ASSERT_EQ(list.size(), 5u);
    EXPECT_EQ(list[0].name, "db");  // not the link name web/db
    EXPECT_EQ(list[0].state, "running");
    EXPECT_EQ(list[1].state, "paused");
    EXPECT_EQ(list[2].state, "exited");
    EXPECT_EQ(list[3].state, "created");
    EXPECT_EQ(list[4].state, "restarting");
}

TEST(DockerParsers, EmptyContainerList)
{
    EXPECT_TRUE(parseContainerList("[]").empty());
    EXPECT_TRUE(parseContainerList("[]\n").empty());  // dockerd ends bodies with a newline
}

TEST(DockerParsers, ContainerListRejectsMalformed)
{
    EXPECT_THROW(parseContainerList(""), std::invalid_argument);
    EXPECT_THROW(parseContainerList("{}"), std::invalid_argument);
    EXPECT_THROW(parseContainerList("[1]"), std::invalid_argument);
    EXPECT_THROW(parseContainerList(R"([{"Names":["/x"]}])"), std::invalid_argument);
    EXPECT_THROW(parseContainerList(R"([{"Id":7}])"), std::invalid_argument);
    EXPECT_THROW(parseContainerList(R"([{"Id":"abc","Names":[1]}])"), std::invalid_argument);
    EXPECT_THROW(parseContainerList(R"([{"Id":"abc"})"), std::invalid_argument);
}

TEST(DockerParsers, RestartPolicyOfRealDockerd2010)
{
    EXPECT_EQ(parseRestartPolicy(inspect2010), "always");
}

TEST(DockerParsers, RestartPolicyDefaultIsNo)
{
    EXPECT_EQ(parseRestartPolicy(inspect110Default), "no");
}

TEST(DockerParsers, RestartPolicyUnknownWhenAbsent)
{
    EXPECT_EQ(parseRestartPolicy(R"({"Id":"x"})"), "");
    EXPECT_EQ(parseRestartPolicy(R"({"Id":"x","HostConfig":{}})"), "");
    EXPECT_EQ(parseRestartPolicy(R"({"Id":"x","HostConfig":{"RestartPolicy":{}}})"), "");
}

TEST(DockerParsers, RestartPolicyRejectsMalformed)
{
    EXPECT_THROW(parseRestartPolicy(""), std::invalid_argument);
    EXPECT_THROW(parseRestartPolicy("[]"), std::invalid_argument);
    EXPECT_THROW(parseRestartPolicy(R"({"HostConfig":"always"})"), std::invalid_argument);
    EXPECT_THROW(parseRestartPolicy(R"({"HostConfig":{"RestartPolicy":"always"}})"), std::invalid_argument);
    EXPECT_THROW(parseRestartPolicy(R"({"HostConfig":{"RestartPolicy":{"Name":3}}})"), std::invalid_argument);
}

}  // namespace
}  // namespace armdock
