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

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

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
constexpr std::uint64_t maxBodyBytes = 64ull * 1024 * 1024;

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

struct Answer {
    unsigned status = 0;
    std::string body;
};

// One GET on a fresh connection. With retryConnect, a connect that fails
// because the socket does not exist yet or nobody listens is retried every
// connectRetryInterval until the deadline (on an asio timer, never a sleep).
Task<Answer> exchange(asio::io_context& io, const std::filesystem::path& socketPath, const std::string& target,
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
    http::response_parser<http::string_body> parser;
    parser.body_limit(maxBodyBytes);
    co_await http::async_read(ex->socket, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        if (ex->expired) {
            throw timedOut("connected, no answer");
        }
        throw EngineUnreachable(where + ": GET " + target + ": read: " + ec.message());
    }
    auto response = parser.release();
    co_return Answer{response.result_int(), std::move(response.body())};
}

// "HTTP 404: No such container: x" from Docker's {"message": "..."} bodies.
std::string describeStatus(const Answer& answer)
{
    std::string text = "HTTP " + std::to_string(answer.status);
    auto json = nlohmann::json::parse(answer.body, nullptr, false);
    if (json.is_object() && json.contains("message") && json["message"].is_string()) {
        text += ": " + json["message"].get<std::string>();
    } else if (!answer.body.empty() && answer.body.size() < 200) {
        std::string body = answer.body;
        while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) {
            body.pop_back();
        }
        text += ": " + body;
    }
    return text;
}

// Calls a pure parser on a 200 answer; a non-200 answer or a body the parser
// refuses becomes EngineUnreachable naming the socket and the request.
template <typename Parse>
auto parseAnswer(const std::filesystem::path& socketPath, const std::string& target, const Answer& answer,
                 Parse parse)
{
    const std::string where = "docker socket " + socketPath.string() + ": GET " + target;
    if (answer.status != 200) {
        throw EngineUnreachable(where + " answered " + describeStatus(answer));
    }
    try {
        return parse(answer.body);
    } catch (const std::invalid_argument& e) {
        throw EngineUnreachable(where + ": unexpected answer: " + e.what());
    }
}

nlohmann::json parseJson(std::string_view text)
{
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(std::string("not JSON: ") + e.what());
    }
}

// The list of Docker before API 1.23 (Docker 1.10) has no "State", only a
// human "Status" such as "Up 2 hours (Paused)" or "Exited (0) 3 minutes ago".
std::string stateFromStatus(std::string_view status)
{
    auto startsWith = [&](std::string_view prefix) { return status.substr(0, prefix.size()) == prefix; };
    if (startsWith("Up")) {
        return status.find("(Paused)") != std::string_view::npos ? "paused" : "running";
    }
    if (startsWith("Exited")) {
        return "exited";
    }
    if (startsWith("Created")) {
        return "created";
    }
    if (startsWith("Restarting")) {
        return "restarting";
    }
    if (startsWith("Dead")) {
        return "dead";
    }
    if (startsWith("Removal In Progress")) {
        return "removing";
    }
    return "";
}

// Container ids from the engine are hex; anything else must not reach a URL.
bool isSafeContainerId(const std::string& id)
{
    return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
               c == '-' || c == '.';
    });
}

// State.Status of an inspect answer ("running", ...), "" when absent.
std::string parseInspectState(std::string_view inspectJson)
{
    auto json = parseJson(inspectJson);
    if (!json.is_object()) {
        throw std::invalid_argument("container inspect answer is not a JSON object");
    }
    auto state = json.find("State");
    if (state == json.end() || !state->is_object()) {
        return "";
    }
    auto status = state->find("Status");
    if (status != state->end() && status->is_string()) {
        return status->get<std::string>();
    }
    auto running = state->find("Running");
    if (running != state->end() && running->is_boolean()) {
        return running->get<bool>() ? "running" : "exited";
    }
    return "";
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

Task<std::optional<std::string>> DockerClient::initSha1(std::chrono::milliseconds timeout)
{
    const std::string target = "/info";
    auto answer = co_await exchange(io_, socketPath_, target, timeout, false);
    co_return parseAnswer(socketPath_, target, answer, parseInitSha1Body);
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
        auto state = parseAnswer(socketPath_, target, answer, parseInspectState);
        if (!state.empty()) {
            container.state = std::move(state);
        }
        result.push_back(std::move(container));
    }
    co_return result;
}

std::string parseVersionBody(std::string_view json)
{
    auto doc = parseJson(json);
    if (!doc.is_object()) {
        throw std::invalid_argument("/version answer is not a JSON object");
    }
    auto version = doc.find("Version");
    if (version == doc.end() || !version->is_string() || version->get<std::string>().empty()) {
        throw std::invalid_argument("/version answer has no \"Version\" string");
    }
    return version->get<std::string>();
}

std::optional<std::string> parseInitSha1Body(std::string_view json)
{
    auto doc = parseJson(json);
    if (!doc.is_object()) {
        throw std::invalid_argument("/info answer is not a JSON object");
    }
    auto sha = doc.find("InitSha1");
    if (sha == doc.end() || sha->is_null()) {
        return std::nullopt;
    }
    if (!sha->is_string()) {
        throw std::invalid_argument("/info answer has an \"InitSha1\" that is not a string");
    }
    auto value = sha->get<std::string>();
    if (value.empty()) {
        return std::nullopt;
    }
    return value;
}

std::vector<ContainerSummary> parseContainerList(std::string_view json)
{
    auto doc = parseJson(json);
    if (!doc.is_array()) {
        throw std::invalid_argument("/containers/json answer is not a JSON array");
    }
    std::vector<ContainerSummary> result;
    result.reserve(doc.size());
    for (const auto& item : doc) {
        if (!item.is_object()) {
            throw std::invalid_argument("/containers/json answer holds an entry that is not an object");
        }
        ContainerSummary summary;
        auto id = item.find("Id");
        if (id == item.end() || !id->is_string() || id->get<std::string>().empty()) {
            throw std::invalid_argument("/containers/json answer holds an entry without an \"Id\" string");
        }
        summary.id = id->get<std::string>();

        // The primary name is the one without a link path ("/web/db" is db as seen from web).
        auto names = item.find("Names");
        if (names != item.end() && names->is_array()) {
            for (const auto& n : *names) {
                if (!n.is_string()) {
                    throw std::invalid_argument("/containers/json answer holds a name that is not a string");
                }
                auto name = n.get<std::string>();
                if (!name.empty() && name.front() == '/') {
                    name.erase(0, 1);
                }
                if (summary.name.empty() || (summary.name.find('/') != std::string::npos &&
                                             name.find('/') == std::string::npos)) {
                    summary.name = name;
                }
            }
        }

        auto state = item.find("State");
        if (state != item.end() && state->is_string()) {
            summary.state = state->get<std::string>();
        } else {
            auto status = item.find("Status");
            if (status != item.end() && status->is_string()) {
                summary.state = stateFromStatus(status->get<std::string>());
            }
        }
        result.push_back(std::move(summary));
    }
    return result;
}

std::string parseRestartPolicy(std::string_view inspectJson)
{
    auto doc = parseJson(inspectJson);
    if (!doc.is_object()) {
        throw std::invalid_argument("container inspect answer is not a JSON object");
    }
    auto hostConfig = doc.find("HostConfig");
    if (hostConfig == doc.end() || hostConfig->is_null()) {
        return "";
    }
    if (!hostConfig->is_object()) {
        throw std::invalid_argument("container inspect answer has a \"HostConfig\" that is not an object");
    }
    auto policy = hostConfig->find("RestartPolicy");
    if (policy == hostConfig->end() || policy->is_null()) {
        return "";
    }
    if (!policy->is_object()) {
        throw std::invalid_argument("container inspect answer has a \"RestartPolicy\" that is not an object");
    }
    auto name = policy->find("Name");
    if (name == policy->end() || name->is_null()) {
        return "";
    }
    if (!name->is_string()) {
        throw std::invalid_argument("container inspect answer has a \"RestartPolicy.Name\" that is not a string");
    }
    auto value = name->get<std::string>();
    return value.empty() ? "no" : value;  // Docker writes "" for the default policy, which is "no"
}

}  // namespace armdock
