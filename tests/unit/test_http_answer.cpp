// parseHttpAnswer: the engine's raw HTTP/1.1 answers through the same Beast
// parser set-up as the socket read. The answers have the headers dockerd
// 20.10 sends; the fuzz target tests/fuzz/fuzz_http_answer starts from them.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "docker/engine_answers.hpp"
#include "docker/http_answer.hpp"

namespace armdock {
namespace {

const std::string dockerHeaders =
    "Api-Version: 1.41\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\n"
    "Server: Docker/20.10.24+dfsg1 (linux)\r\nDate: Sat, 28 Nov 2026 17:01:57 GMT\r\n";

std::string withLength(const std::string& statusLine, const std::string& body)
{
    return statusLine + "\r\n" + dockerHeaders + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string reasonOf(const std::string& raw)
{
    try {
        parseHttpAnswer(raw);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(accepted)";
}

TEST(HttpAnswer, ContentLengthAnswerOfDockerd)
{
    auto answer = parseHttpAnswer(withLength("HTTP/1.1 200 OK", R"({"Version":"20.10.24+dfsg1"})" "\n"));
    EXPECT_EQ(answer.status, 200u);
    EXPECT_EQ(parseVersionBody(answer.body), "20.10.24+dfsg1");
}

TEST(HttpAnswer, ChunkedAnswerIsJoined)
{
    std::string raw = "HTTP/1.1 200 OK\r\n" + dockerHeaders + "Transfer-Encoding: chunked\r\n\r\n" +
                      "3\r\n[{\"\r\n" + "b\r\nId\":\"abc\"}]\r\n" + "0\r\n\r\n";
    auto answer = parseHttpAnswer(raw);
    EXPECT_EQ(answer.body, R"([{"Id":"abc"}])");
    EXPECT_EQ(parseContainerList(answer.body).at(0).id, "abc");
}

TEST(HttpAnswer, BodyWithoutLengthRunsToTheEndOfTheConnection)
{
    auto answer = parseHttpAnswer("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nOK");
    EXPECT_EQ(answer.status, 200u);
    EXPECT_EQ(answer.body, "OK");
}

TEST(HttpAnswer, ErrorAnswerKeepsStatusAndMessage)
{
    auto answer = parseHttpAnswer(withLength("HTTP/1.1 404 Not Found", R"({"message":"No such container: 6f7b"})" "\n"));
    EXPECT_EQ(answer.status, 404u);
    EXPECT_EQ(describeErrorAnswer(answer.status, answer.body), "HTTP 404: No such container: 6f7b");
    EXPECT_EQ(describeErrorAnswer(500, "page not found\r\n"), "HTTP 500: page not found");
    EXPECT_EQ(describeErrorAnswer(500, std::string(300, 'x')), "HTTP 500");
}

// Found by fuzz_http_answer: an empty answer reached Beast's put_eof, which
// asserts that something was received.
TEST(HttpAnswer, EmptyAnswerIsRefusedByName)
{
    EXPECT_EQ(reasonOf(""), "the engine closed the connection without an answer");
}

TEST(HttpAnswer, TruncatedAnswersAreRefused)
{
    EXPECT_EQ(reasonOf("HTTP/1.1 200 OK\r\nContent-Le"), "HTTP answer ends before its header");
    std::string full = withLength("HTTP/1.1 200 OK", R"({"Version":"1.10.2"})");
    EXPECT_EQ(reasonOf(full.substr(0, full.size() - 5)), "HTTP answer ends before its body");
    std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
    EXPECT_EQ(reasonOf(chunked), "HTTP answer ends before its body");
}

TEST(HttpAnswer, MalformedAnswersAreRefused)
{
    EXPECT_EQ(reasonOf("OK"), "HTTP answer ends before its header");
    EXPECT_EQ(reasonOf("SSH-2.0-OpenSSH_9.2\r\n\r\n").rfind("malformed HTTP answer: ", 0), 0u);
    EXPECT_EQ(reasonOf("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").rfind("malformed HTTP answer: ", 0), 0u);
}

// Found while writing the fuzz target: Beast 1.74's string_body reserves the
// announced Content-Length before body_limit applies, so this header threw
// std::bad_alloc out of the parser (and a smaller lie took that much memory).
TEST(HttpAnswer, AnnouncedBodyOverTheLimitIsRefusedBeforeItIsRead)
{
    EXPECT_EQ(reasonOf("HTTP/1.1 200 OK\r\nContent-Length: 40000000000\r\n\r\n{}"),
              "the answer announces a body of 40000000000 bytes, more than the 64 MiB the agent reads");
    std::string justOver = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(maxAnswerBodyBytes + 1) + "\r\n\r\n{}";
    EXPECT_NE(reasonOf(justOver).find("more than the 64 MiB"), std::string::npos);
    std::string atLimit = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(maxAnswerBodyBytes) + "\r\n\r\n{}";
    EXPECT_EQ(reasonOf(atLimit), "HTTP answer ends before its body");
}

TEST(EngineAnswers, ContainerIdsThatMayReachAUrl)
{
    EXPECT_TRUE(isSafeContainerId("6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745"));
    EXPECT_FALSE(isSafeContainerId(""));
    EXPECT_FALSE(isSafeContainerId("../../version"));
    EXPECT_FALSE(isSafeContainerId("abc?x=1"));
    EXPECT_FALSE(isSafeContainerId(std::string(129, 'a')));
}

}  // namespace
}  // namespace armdock
