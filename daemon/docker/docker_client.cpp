// EngineApi over the Docker engine's unix socket with Boost.Beast.
//
// Every request opens its own connection, sends one HTTP/1.1 GET with
// "Connection: close" and reads one answer. A steady_timer armed at the
// request's deadline closes the socket when it passes, which aborts whatever
// connect/write/read is pending. The connection and the timer live in one
// shared Exchange that both the request coroutine and the deadline handler
// hold, so neither can outlive the objects it touches; the timer is cancelled
// as soon as the request ends.
//
// The deadline handler and the request run on the same io_context, which the
// agent runs on one thread (DESIGN: one event loop).
#include "docker/docker_client.hpp"

#include "docker/engine_answers.hpp"
#include "docker/http_answer.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <memory>
#include <utility>

// GCC 12 reports Boost 1.74's own coroutine frame allocator (operator new
// and delete of awaitable_frame_base) as mismatched: a false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace armdock {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using Socket = asio::local::stream_protocol::socket;
using boost::system::error_code;

constexpr std::chrono::milliseconds connectRetryInterval{5};

// One request's connection and its deadline.
struct Exchange {
    explicit Exchange(asio::io_context& io) : socket(io), deadline(io) {}

    Socket socket;
    asio::steady_timer deadline;
    bool expired = false;
};

// The deadline runs as its own handler: when it fires it closes the socket,
// so the pending operation of the request completes with operation_aborted.
void armDeadline(const std::shared_ptr<Exchange>& ex, Clock::time_point at)
{
    ex->deadline.expires_at(at);
    ex->deadline.async_wait([ex](error_code ec) {
        if (ec) {
            return;  // cancelled: the request ended first
        }
        ex->expired = true;
        error_code ignored;
        ex->socket.close(ignored);
    });
}

std::string formatDuration(std::chrono::milliseconds d)
{
    if (d.count() >= 1000 && d.count() % 1000 == 0) {
        return std::to_string(d.count() / 1000) + " s";
    }
    return std::to_string(d.count()) + " ms";
}

std::chrono::milliseconds remainingUntil(Clock::time_point deadline)
{
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    return std::max(left, std::chrono::milliseconds{0});
}

bool isRetryableConnectError(const error_code& ec)
{
    return ec == asio::error::connection_refused || ec == boost::system::errc::no_such_file_or_directory;
}

// One GET on a fresh connection. With retryConnect, a connect that fails
// because the socket does not exist yet or nobody listens is retried every
// connectRetryInterval until the deadline (on an asio timer, never a sleep).
Task<HttpAnswer> exchange(asio::io_context& io, const std::filesystem::path& socketPath, const std::string& target,
                      std::chrono::milliseconds timeout, bool retryConnect)
{
    const std::string where = "docker socket " + socketPath.string();
    const auto start = Clock::now();
    const auto deadline = start + timeout;

    asio::local::stream_protocol::endpoint endpoint;
    try {
        endpoint = asio::local::stream_protocol::endpoint(socketPath.string());
    } catch (const boost::system::system_error& e) {
        throw EngineUnreachable(where + ": " + e.code().message());
    }

    auto ex = std::make_shared<Exchange>(io);
    armDeadline(ex, deadline);
    // Cancels the deadline on every way out of this coroutine.
    struct DeadlineGuard {
        std::shared_ptr<Exchange> ex;
        ~DeadlineGuard()
        {
            ex->deadline.cancel();
            error_code ignored;
            ex->socket.close(ignored);
        }
    } guard{ex};

    auto timedOut = [&](const char* phase) {
        return EngineUnreachable(where + ": no answer to GET " + target + " within " + formatDuration(timeout) +
                                 " (" + phase + ")");
    };

    // connect
    error_code ec;
    for (;;) {
        ec = {};
        co_await ex->socket.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) {
            break;
        }
        if (ex->expired) {
            throw timedOut("connect did not complete");
        }
        if (!retryConnect || !isRetryableConnectError(ec)) {
            throw EngineUnreachable(where + ": connect: " + ec.message());
        }
        error_code closeEc;
        ex->socket.close(closeEc);
        asio::steady_timer retry(io, std::min(Clock::now() + connectRetryInterval, deadline));
        error_code waitEc;
        co_await retry.async_wait(asio::redirect_error(asio::use_awaitable, waitEc));
        if (ex->expired || Clock::now() >= deadline) {
            throw EngineUnreachable(where + ": connect: " + ec.message() + " (still failing after " +
                                    formatDuration(timeout) + ")");
        }
    }

    // request
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, "docker");
    request.set(http::field::user_agent, "armdock-agent");
    request.set(http::field::connection, "close");
    co_await http::async_write(ex->socket, request, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        if (ex->expired) {
            throw timedOut("request not sent");
        }
        throw EngineUnreachable(where + ": GET " + target + ": write: " + ec.message());
    }

    // answer
    boost::beast::flat_buffer buffer;
    AnswerParser parser;
    limitAnswerParser(parser);
    co_await http::async_read_header(ex->socket, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        if (ex->expired) {
            throw timedOut("connected, no answer");
        }
        throw EngineUnreachable(where + ": GET " + target + ": read: " + ec.message());
    }
    if (auto problem = announcedBodyProblem(parser)) {
        throw EngineUnreachable(where + ": GET " + target + ": " + *problem);
    }
    co_await http::async_read(ex->socket, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        if (ex->expired) {
            throw timedOut("connected, the answer's body did not arrive");
        }
        throw EngineUnreachable(where + ": GET " + target + ": read: " + ec.message());
    }
    co_return takeAnswer(parser);
}

// Calls a pure parser on a 200 answer; a non-200 answer or a body the parser
// refuses becomes EngineUnreachable naming the socket and the request.
template <typename Parse>
auto parseAnswer(const std::filesystem::path& socketPath, const std::string& target, const HttpAnswer& answer,
                 Parse parse)
{
    const std::string where = "docker socket " + socketPath.string() + ": GET " + target;
    if (answer.status != 200) {
        throw EngineUnreachable(where + " answered " + describeErrorAnswer(answer.status, answer.body));
    }
    try {
        return parse(answer.body);
    } catch (const std::invalid_argument& e) {
        throw EngineUnreachable(where + ": unexpected answer: " + e.what());
    }
}

}  // namespace

DockerClient::DockerClient(boost::asio::io_context& io, std::filesystem::path socketPath)
    : io_(io), socketPath_(std::move(socketPath))
{
}

Task<std::pair<unsigned, std::string>> DockerClient::get(std::string target, std::chrono::milliseconds timeout)
{
    auto answer = co_await exchange(io_, socketPath_, target, timeout, false);
    co_return std::make_pair(answer.status, std::move(answer.body));
}

Task<bool> DockerClient::ping(std::chrono::milliseconds timeout)
{
    const std::string target = "/_ping";  // named: no temporary inside co_await (GCC 12, see async.hpp)
    auto answer = co_await exchange(io_, socketPath_, target, timeout, true);
    co_return answer.status == 200 && answer.body == "OK";
}

Task<std::string> DockerClient::version(std::chrono::milliseconds timeout)
{
    const std::string target = "/version";
    auto answer = co_await exchange(io_, socketPath_, target, timeout, false);
    co_return parseAnswer(socketPath_, target, answer, parseVersionBody);
}

Task<std::vector<ComponentVersion>> DockerClient::components(std::chrono::milliseconds timeout)
{
    const std::string target = "/version";
    auto answer = co_await exchange(io_, socketPath_, target, timeout, false);
    co_return parseAnswer(socketPath_, target, answer, parseComponentsBody);
}

Task<std::optional<std::string>> DockerClient::initSha1(std::chrono::milliseconds timeout)
{
    const std::string target = "/info";
    auto answer = co_await exchange(io_, socketPath_, target, timeout, false);
    co_return parseAnswer(socketPath_, target, answer, parseInitSha1Body);
}

Task<LiveRestoreInfo> DockerClient::liveRestore(std::chrono::milliseconds timeout)
{
    const std::string target = "/info";
    auto answer = co_await exchange(io_, socketPath_, target, timeout, false);
    co_return parseAnswer(socketPath_, target, answer, parseLiveRestoreInfo);
}

Task<std::vector<ContainerSummary>> DockerClient::containers(std::chrono::milliseconds timeout)
{
    const auto deadline = Clock::now() + timeout;
    const std::string listTarget = "/containers/json?all=1";
    auto listAnswer = co_await exchange(io_, socketPath_, listTarget, timeout, false);
    auto list = parseAnswer(socketPath_, listTarget, listAnswer, parseContainerList);

    std::vector<ContainerSummary> result;
    result.reserve(list.size());
    for (auto& container : list) {
        if (!isSafeContainerId(container.id)) {
            throw EngineUnreachable("docker socket " + socketPath_.string() + ": GET " + listTarget +
                                    ": unexpected container id \"" + container.id + "\"");
        }
        const std::string target = "/containers/" + container.id + "/json";
        auto left = remainingUntil(deadline);
        if (left.count() == 0) {
            throw EngineUnreachable("docker socket " + socketPath_.string() + ": no answer to GET " + target +
                                    " within " + formatDuration(timeout) + " (listing containers)");
        }
        auto answer = co_await exchange(io_, socketPath_, target, left, false);
        if (answer.status == 404) {
            continue;  // removed between the list and the inspect
        }
        container.restartPolicy = parseAnswer(socketPath_, target, answer, parseRestartPolicy);
        container.pid = parseAnswer(socketPath_, target, answer, parseInspectPid);
        auto state = parseAnswer(socketPath_, target, answer, parseInspectState);
        if (!state.empty()) {
            container.state = std::move(state);
        }
        result.push_back(std::move(container));
    }
    co_return result;
}

}  // namespace armdock
