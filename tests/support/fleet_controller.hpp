// The controller's side of a fleet rollout, for the fleet test and the fleet
// benchmark: an Ansible inventory of sandboxed agents, ansible-playbook
// ansible/rollout.yml run from a work folder, and what it left there
// (results/<host>.json, results/summary.json).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sandbox.hpp"

namespace armdock::test {

// One host of the inventory: its name and its variables, as YAML lines
// without indentation ("ansible_connection: local", ...).
struct InventoryHost {
    std::string name;
    std::vector<std::string> vars;
};

// The variables of a sandboxed agent reached with ansible_connection: local:
// its bus, its Docker socket, a stage folder in the sandbox and armdockctl.
InventoryHost localAgentHost(const std::string& name, const Sandbox& sandbox, const std::filesystem::path& armdockctl);

// Writes the group armdock_hosts with these hosts, in this order.
void writeInventory(const std::filesystem::path& file, const std::vector<InventoryHost>& hosts);

struct RolloutRun {
    CommandResult run;
    double seconds = 0;  // ansible-playbook's wall time
    nlohmann::json summary;  // null when no summary.json was written
    std::map<std::string, nlohmann::json> results;  // host -> its result
};

// ansible-playbook -i inventory ansibleDir/rollout.yml -e @vars from `work`,
// with results under work/results (emptied first) and Ansible's temporary
// folders under work/ansible-tmp. `runner` runs the command.
RolloutRun runRollout(const Sandbox& runner, const std::filesystem::path& work, const std::filesystem::path& inventory,
                      const nlohmann::json& vars, const std::vector<std::string>& extraArgs = {});

}  // namespace armdock::test
