#include "docker/engine_answers.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace armdock {
namespace {

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

}  // namespace

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

std::vector<ComponentVersion> parseComponentsBody(std::string_view json)
{
    auto doc = parseJson(json);
    if (!doc.is_object()) {
        throw std::invalid_argument("/version answer is not a JSON object");
    }
    std::vector<ComponentVersion> components;
    auto list = doc.find("Components");
    if (list == doc.end() || list->is_null()) {
        return components;
    }
    if (!list->is_array()) {
        throw std::invalid_argument("/version \"Components\" is not an array");
    }
    for (const auto& entry : *list) {
        auto name = entry.is_object() ? entry.find("Name") : entry.end();
        auto version = entry.is_object() ? entry.find("Version") : entry.end();
        if (name == entry.end() || !name->is_string() || version == entry.end() || !version->is_string()) {
            throw std::invalid_argument("/version has a component without a \"Name\" and \"Version\" string");
        }
        if (name->get<std::string>() != "Engine") {
            components.push_back({name->get<std::string>(), version->get<std::string>()});
        }
    }
    return components;
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

std::string describeErrorAnswer(unsigned status, std::string_view body)
{
    std::string text = "HTTP " + std::to_string(status);
    auto json = nlohmann::json::parse(body, nullptr, false);
    if (json.is_object() && json.contains("message") && json["message"].is_string()) {
        text += ": " + json["message"].get<std::string>();
    } else if (!body.empty() && body.size() < 200) {
        while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) {
            body.remove_suffix(1);
        }
        text += ": " + std::string(body);
    }
    return text;
}

bool isSafeContainerId(std::string_view id)
{
    return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
               c == '-' || c == '.';
    });
}

int parseInspectPid(std::string_view inspectJson)
{
    auto json = parseJson(inspectJson);
    if (!json.is_object()) {
        throw std::invalid_argument("container inspect answer is not a JSON object");
    }
    auto state = json.find("State");
    if (state == json.end() || !state->is_object()) {
        return 0;
    }
    auto pid = state->find("Pid");
    if (pid == state->end() || pid->is_null()) {
        return 0;
    }
    if (!pid->is_number_integer() || pid->get<long long>() < 0 || pid->get<long long>() > 0x3fffffff) {
        throw std::invalid_argument("container inspect answer has a \"State.Pid\" that is not a process id");
    }
    return pid->get<int>();
}

LiveRestoreInfo parseLiveRestoreInfo(std::string_view infoJson)
{
    auto doc = parseJson(infoJson);
    if (!doc.is_object()) {
        throw std::invalid_argument("/info answer is not a JSON object");
    }
    LiveRestoreInfo info;
    auto enabled = doc.find("LiveRestoreEnabled");
    if (enabled != doc.end() && !enabled->is_null()) {
        if (!enabled->is_boolean()) {
            throw std::invalid_argument("/info answer has a \"LiveRestoreEnabled\" that is not true or false");
        }
        info.enabled = enabled->get<bool>();
    }
    auto swarm = doc.find("Swarm");
    if (swarm != doc.end() && swarm->is_object()) {
        auto state = swarm->find("LocalNodeState");
        if (state != swarm->end() && state->is_string()) {
            const auto word = state->get<std::string>();
            info.swarm = !word.empty() && word != "inactive";
        }
    }
    return info;
}

}  // namespace armdock
