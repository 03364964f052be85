#include "fleet_controller.hpp"

#include <chrono>

namespace armdock::test {

namespace fs = std::filesystem;

InventoryHost localAgentHost(const std::string& name, const Sandbox& sandbox, const fs::path& armdockctl)
{
    return {name,
            {"ansible_connection: local", "ansible_python_interpreter: /usr/bin/python3",
             "armdock_bus: \"" + sandbox.busAddress() + "\"", "armdock_docker_socket: \"" + sandbox.dockerSocket().string() + "\"",
             "armdock_stage_dir: \"" + (sandbox.dir() / "stage").string() + "\"", "armdock_ctl: \"" + armdockctl.string() + "\""}};
}

void writeInventory(const fs::path& file, const std::vector<InventoryHost>& hosts)
{
    std::string text = "armdock_hosts:\n  hosts:\n";
    for (const auto& host : hosts) {
        text += "    " + host.name + ":\n";
        for (const auto& line : host.vars)
            text += "      " + line + "\n";
    }
    writeFile(file, text);
}

RolloutRun runRollout(const Sandbox& runner, const fs::path& work, const fs::path& inventory, const nlohmann::json& vars,
                      const std::vector<std::string>& extraArgs)
{
    const fs::path results = work / "results";
    fs::remove_all(results);
    writeFile(work / "vars.json", vars.dump());
    const std::string tmp = (work / "ansible-tmp").string();
    // sh resets PWD: the folder is passed as an argument, and the playbook resolves relative paths against it.
    std::vector<std::string> argv{"env", "ANSIBLE_LOCAL_TEMP=" + tmp, "ANSIBLE_REMOTE_TEMP=" + tmp, "ANSIBLE_NOCOLOR=1",
                                  "ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_RETRY_FILES_ENABLED=0",
                                  "sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "sh", work.string(),
                                  "ansible-playbook", "-i", inventory.string(), (ansibleDir() / "rollout.yml").string(),
                                  "-e", "@" + (work / "vars.json").string()};
    argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
    const auto start = std::chrono::steady_clock::now();
    RolloutRun r;
    r.run = runner.run(argv, std::chrono::seconds(600));
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (fs::exists(results / "summary.json"))
        r.summary = nlohmann::json::parse(readFile(results / "summary.json"));
    if (fs::exists(results))
        for (const auto& entry : fs::directory_iterator(results))
            if (entry.path().extension() == ".json" && entry.path().stem() != "summary")
                r.results[entry.path().stem().string()] = nlohmann::json::parse(readFile(entry.path()));
    return r;
}

}  // namespace armdock::test
