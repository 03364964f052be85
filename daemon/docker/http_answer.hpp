// The engine's HTTP/1.1 answers: one Beast response parser set up the same
// way for the socket read (docker_client.cpp) and for parseHttpAnswer, the
// pure function that the unit tests and the fuzzer feed raw bytes to.
#pragma once

#include <utility>  // before Boost 1.74 headers, which use std::exchange without it

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace armdock {

// A body larger than this is refused (a /containers/json of thousands of
// containers is a few MiB).
constexpr std::uint64_t maxAnswerBodyBytes = 64ull * 1024 * 1024;

using AnswerParser = boost::beast::http::response_parser<boost::beast::http::string_body>;

struct HttpAnswer {
    unsigned status = 0;
    std::string body;
};

// Applies the agent's limits to a fresh parser.
void limitAnswerParser(AnswerParser& parser);

// Once the header is parsed: the reason to refuse the answer before its body
// is read, or nullopt. Beast 1.74's string_body reserves the Content-Length
// it is announced before body_limit applies, so a header announcing 40 GB
// would throw std::bad_alloc (or take the memory) without this check.
std::optional<std::string> announcedBodyProblem(const AnswerParser& parser);

// Moves status and body out of a parser that is done.
HttpAnswer takeAnswer(AnswerParser& parser);

// Parses one complete answer as read from a connection the engine closes
// after it (the request says "Connection: close"): `raw` ends where the
// connection ended. Throws std::invalid_argument naming what is wrong
// ("malformed HTTP answer: bad version", "HTTP answer ends before its body").
HttpAnswer parseHttpAnswer(std::string_view raw);

}  // namespace armdock
