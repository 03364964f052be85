// EngineApi over the Docker engine's unix socket, with Boost.Beast. One
// connection per request (the engine may restart between requests); every
// request has a deadline that closes the socket when it passes. Runs on the
// agent's io_context and never blocks it.
#pragma once

#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <string>
#include <string_view>

#include "core/engine_api.hpp"

namespace armdock {

class DockerClient final : public EngineApi {
public:
    DockerClient(boost::asio::io_context& io, std::filesystem::path socketPath);

    Task<bool> ping(std::chrono::milliseconds timeout) override;
    Task<std::string> version(std::chrono::milliseconds timeout) override;
    Task<std::vector<ComponentVersion>> components(std::chrono::milliseconds timeout) override;
    Task<std::optional<std::string>> initSha1(std::chrono::milliseconds timeout) override;
    Task<std::vector<ContainerSummary>> containers(std::chrono::milliseconds timeout) override;
    Task<LiveRestoreInfo> liveRestore(std::chrono::milliseconds timeout) override;

    // GET target; returns (status, body). Throws EngineUnreachable.
    Task<std::pair<unsigned, std::string>> get(std::string target, std::chrono::milliseconds timeout);

private:
    boost::asio::io_context& io_;
    std::filesystem::path socketPath_;
};

}  // namespace armdock
