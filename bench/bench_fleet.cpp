// Benchmark 7: the fleet rollout's controller. Three sandboxed agents (each
// its own systemd user manager, dbus-daemon, containerd, dockerd), reached
// with ansible_connection: local. Each round rolls a new engine out three
// ways, one after the other:
//   loop      by hand, host after host: copy the file, armdockctl upgrade
//             (what a shell loop over the hosts does, without its ssh);
//   batches   ansible/rollout.yml with its default batches (1, 10 %, the
//             rest: three batches of one host here);
//   one batch rollout.yml with all three hosts in one batch.
// The agents' part of a rollout is what armdockctl waited for on each host
// (each result's upgrade_seconds; the longest one of a batch, as a batch's
// hosts upgrade side by side); the controller's own time is the rest of
// ansible-playbook's wall time, Ansible's start included.
#include <nlohmann/json.hpp>

#include "bench_agent.hpp"
#include "fleet_controller.hpp"

using namespace armdock::bench;
using armdock::test::InventoryHost;
using armdock::test::RolloutRun;

namespace {

struct Host {
    std::string name;
    std::unique_ptr<Sandbox> sandbox;
};

std::string sha256Of(const Sandbox& runner, const fs::path& file)
{
    const auto r = runner.run({"sha256sum", file.string()});
    return r.output.substr(0, 64);
}

// The agents' time of a rollout: per batch (hosts in inventory order, `perBatch` each) its longest upgrade.
double agentsSeconds(const RolloutRun& r, const std::vector<Host>& hosts, std::size_t perBatch)
{
    double total = 0;
    for (std::size_t first = 0; first < hosts.size(); first += perBatch) {
        double longest = 0;
        for (std::size_t i = first; i < std::min(hosts.size(), first + perBatch); ++i) {
            const auto it = r.results.find(hosts[i].name);
            if (it != r.results.end() && it->second["upgrade_seconds"].is_number())
                longest = std::max(longest, it->second["upgrade_seconds"].get<double>());
        }
        total += longest;
    }
    return total;
}

bool allSucceeded(const RolloutRun& r, const std::vector<Host>& hosts)
{
    for (const auto& h : hosts) {
        const auto it = r.results.find(h.name);
        if (it == r.results.end() || it->second["result"] != "success")
            return false;
    }
    return r.run.exitCode == 0;
}

}  // namespace

int main()
{
    const int rounds = envInt("ARMDOCK_BENCH_FLEET_ROUNDS", 3);
    const fs::path ctl = armdock::test::armdockctlBinary();
    if (ctl.empty() || armdock::test::ansibleDir().empty()) {
        std::cerr << "ARMDOCKCTL_BINARY and ARMDOCK_ANSIBLE_DIR must be set (bench/run.sh sets them)\n";
        return 2;
    }
    std::vector<Host> hosts;
    for (int i = 1; i <= 3; ++i) {
        hosts.push_back({"node" + std::to_string(i), std::make_unique<Sandbox>()});
        startAgent(*hosts.back().sandbox);
    }
    const Sandbox& controller = *hosts[0].sandbox;
    char tmpl[] = "/tmp/armdock-bench-fleet.XXXXXX";
    const fs::path work = ::mkdtemp(tmpl);
    std::vector<InventoryHost> entries;
    for (const auto& h : hosts)
        entries.push_back(armdock::test::localAgentHost(h.name, *h.sandbox, ctl));
    const fs::path inventory = work / "inventory.yml";
    armdock::test::writeInventory(inventory, entries);
    const fs::path stock = hosts[0].sandbox->payloadPath("docker");

    std::vector<double> loop, loopUpgrade, batches, batchesAgents, one, oneAgents;
    int variant = 0;
    auto nextEngine = [&] {
        ++variant;
        return variantOf(stock, work / ("dockerd-" + std::to_string(variant)), "fleet-bench-" + std::to_string(variant));
    };
    for (int round = 1; round <= rounds; ++round) {
        // By hand: copy, upgrade, next host.
        const fs::path engine = nextEngine();
        const std::string sha = sha256Of(controller, engine);
        double upgrades = 0;
        const auto loopStart = Clock::now();
        bool loopOk = true;
        for (const auto& h : hosts) {
            const fs::path stage = h.sandbox->dir() / "stage-loop";
            fs::create_directories(stage);
            fs::copy_file(engine, stage / "docker", fs::copy_options::overwrite_existing);
            const auto start = Clock::now();
            const auto r = controller.run({ctl.string(), "--bus", h.sandbox->busAddress(), "--docker-socket", h.sandbox->dockerSocket().string(),
                                           "upgrade", "--payload", "docker=" + (stage / "docker").string(), "--sha256", "docker=" + sha},
                                          std::chrono::seconds(300));
            upgrades += msBetween(start, Clock::now()) / 1000;
            loopOk = loopOk && r.exitCode == 0;
            if (r.exitCode != 0)
                std::cerr << h.name << ": armdockctl upgrade: " << r.output << "\n";
        }
        const double loopSeconds = msBetween(loopStart, Clock::now()) / 1000;

        const nlohmann::json varsBatches{{"armdock_payloads", {{"docker", nextEngine().string()}}}, {"armdock_results", "results"}};
        const RolloutRun b = armdock::test::runRollout(controller, work, inventory, varsBatches);
        const nlohmann::json varsOne{{"armdock_payloads", {{"docker", nextEngine().string()}}}, {"armdock_results", "results"}};
        const RolloutRun o = armdock::test::runRollout(controller, work, inventory, varsOne, {"-e", "{\"armdock_batches\": [\"100%\"]}"});

        const bool ok = loopOk && allSucceeded(b, hosts) && allSucceeded(o, hosts);
        const double bAgents = agentsSeconds(b, hosts, 1), oAgents = agentsSeconds(o, hosts, hosts.size());
        std::cout << "round " << round << ": loop " << formatted(loopSeconds, 2) << " s (upgrades " << formatted(upgrades, 2) << ")   batches of 1 "
                  << formatted(b.seconds, 2) << " s (agents " << formatted(bAgents, 2) << ")   one batch " << formatted(o.seconds, 2)
                  << " s (agents " << formatted(oAgents, 2) << ")" << (ok ? "" : "   [not counted: a host did not succeed]") << "\n";
        if (!ok) {
            if (!allSucceeded(b, hosts))
                std::cerr << b.run.output << "\n";
            if (!allSucceeded(o, hosts))
                std::cerr << o.run.output << "\n";
            continue;
        }
        loop.push_back(loopSeconds);
        loopUpgrade.push_back(upgrades);
        batches.push_back(b.seconds);
        batchesAgents.push_back(bAgents);
        one.push_back(o.seconds);
        oneAgents.push_back(oAgents);
    }
    std::error_code ec;
    fs::remove_all(work, ec);
    if (loop.empty()) {
        std::cerr << "no round succeeded\n";
        return 1;
    }

    const double n = static_cast<double>(hosts.size());
    std::vector<double> perHost, perBatchOfAll;
    for (std::size_t i = 0; i < batches.size(); ++i) {
        perHost.push_back((batches[i] - batchesAgents[i]) / n);
        perBatchOfAll.push_back(one[i] - oneAgents[i]);
    }
    const double mLoop = median(loop), mUp = median(loopUpgrade), mB = median(batches), mO = median(one);
    const double mHost = median(perHost), mBatch = median(perBatchOfAll), mUpHost = median(loopUpgrade) / n, mAgentsOne = median(oneAgents);
    std::cout << "\nmedians of " << loop.size() << " round(s), 3 hosts:\n"
              << "  loop by hand           " << formatted(mLoop, 2) << " s, of which armdockctl upgrade " << formatted(mUp, 2) << " s\n"
              << "  rollout, batches of 1  " << formatted(mB, 2) << " s: controller " << formatted(mHost, 2) << " s per host (batch)\n"
              << "  rollout, one batch     " << formatted(mO, 2) << " s: agents " << formatted(mAgentsOne, 2) << " s side by side, controller "
              << formatted(mBatch, 2) << " s\n";
    addSummary({"7 fleet", "rollout of 3 hosts, batches of 1, vs a loop of armdockctl upgrade (median s)", formatted(mB, 1),
                "loop " + formatted(mLoop, 1), ratio(mB, mLoop), "-", false}, "measured");
    addSummary({"7 fleet", "controller's own time per host, batches of 1 (median s)", formatted(mHost, 2),
                "agent's upgrade " + formatted(mUpHost, 2), ratio(mHost, mUpHost), "-", false}, "measured");
    addSummary({"7 fleet", "controller's own time per batch of 3 hosts (median s)", formatted(mBatch, 2),
                "agents' longest " + formatted(mAgentsOne, 2), ratio(mBatch, mAgentsOne), "-", false}, "measured");
    return 0;
}
