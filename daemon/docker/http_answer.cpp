#include "docker/http_answer.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <stdexcept>

namespace armdock {

void limitAnswerParser(AnswerParser& parser)
{
    parser.body_limit(maxAnswerBodyBytes);
}

std::optional<std::string> announcedBodyProblem(const AnswerParser& parser)
{
    auto length = parser.content_length();
    if (length && *length > maxAnswerBodyBytes)
        return "the answer announces a body of " + std::to_string(*length) + " bytes, more than the " +
               std::to_string(maxAnswerBodyBytes / (1024 * 1024)) + " MiB the agent reads";
    return std::nullopt;
}

HttpAnswer takeAnswer(AnswerParser& parser)
{
    auto response = parser.release();
    return HttpAnswer{response.result_int(), std::move(response.body())};
}

HttpAnswer parseHttpAnswer(std::string_view raw)
{
    namespace http = boost::beast::http;
    AnswerParser parser;
    limitAnswerParser(parser);
    // Not eager until the header is checked: put() stops once it is parsed,
    // as the socket read does with async_read_header.
    parser.eager(false);
    bool headerChecked = false;
    boost::beast::error_code ec;
    std::size_t used = 0;
    while (!parser.is_done()) {
        std::size_t took = parser.put(boost::asio::buffer(raw.data() + used, raw.size() - used), ec);
        used += took;
        if (!headerChecked && parser.is_header_done()) {
            if (auto problem = announcedBodyProblem(parser))
                throw std::invalid_argument(*problem);
            headerChecked = true;
            parser.eager(true);
        }
        if (ec == http::error::need_more) {
            ec = {};
        } else if (ec) {
            break;
        }
        if (took == 0 && !parser.is_done()) {
            // Nothing more can be consumed: the connection ended here.
            if (!parser.got_some())
                throw std::invalid_argument("the engine closed the connection without an answer");
            parser.put_eof(ec);
            break;
        }
    }
    if (ec == http::error::partial_message) {
        throw std::invalid_argument(parser.is_header_done() ? "HTTP answer ends before its body"
                                                            : "HTTP answer ends before its header");
    }
    if (ec) {
        throw std::invalid_argument("malformed HTTP answer: " + ec.message());
    }
    if (!parser.is_done()) {
        throw std::invalid_argument("HTTP answer ends before its body");
    }
    return takeAnswer(parser);
}

}  // namespace armdock
