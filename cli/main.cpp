// armdockctl: the operator's command line for armdock-agent. Parses the
// arguments (CLI11) and runs one command (commands.cpp); the exit codes are
// in exit_codes.hpp, armdockctl(1) and README.md.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

#include "armdock_build_config.h"
#include "commands.hpp"
#include "exit_codes.hpp"

int main(int argc, char** argv)
{
    using namespace armdock::cli;
    spdlog::set_level(spdlog::level::off);  // the shared bus driver's logging is the agent's, not ours

    GlobalOptions global;
    CLI::App app{"armdockctl: upgrade, roll back and watch the Docker engine through armdock-agent.\n"
                 "Exit codes: 0 success, 1 failed, 2 usage, 3 rolled back, 4 rejected, 5 busy,\n"
                 "6 access denied, 7 agent not running, 8 cancelled, 9 timed out, 130 interrupted.\n"
                 "See armdockctl(1).",
                 "armdockctl"};
    app.set_version_flag("--version", std::string("armdockctl ") + ARMDOCK_VERSION);
    app.require_subcommand(1);
    app.fallthrough();  // global options also after the command
    app.add_option("--bus", global.bus, "bus of the agent: system, user or a D-Bus address (like agent.bus)")
        ->envname("ARMDOCK_BUS")
        ->capture_default_str();
    app.add_option("--docker-socket", global.dockerSocket, "Docker API socket that status pings")->capture_default_str();

    bool json = false;
    auto* status = app.add_subcommand("status", "show the agent's state, engine version, last result and Docker's health");
    status->add_flag("--json", json, "print one JSON object");

    UpgradeOptions upgrade;
    auto addWaitOptions = [](CLI::App* cmd, WaitOptions& wait) {
        cmd->add_flag("--no-wait", wait.noWait, "print the transaction id and return at once");
        cmd->add_option("--timeout", wait.timeoutSec, "stop waiting after SEC seconds (exit 9; the transaction goes on)")
            ->type_name("SEC");
    };
    auto* up = app.add_subcommand("upgrade", "install a new engine and wait for the outcome, showing the progress");
    up->add_option("--docker", upgrade.docker, "the new docker binary (a relative path is taken from here)")->type_name("PATH");
    up->add_option("--dockerinit", upgrade.dockerinit, "the new dockerinit (a relative path is taken from here)")->type_name("PATH");
    up->add_option("--payload", upgrade.payloads, "any configured payload: NAME=PATH (repeatable)")->type_name("NAME=PATH");
    up->add_option("--sha256", upgrade.sha256, "expected SHA-256 of a payload: NAME=HEX (repeatable)")->type_name("NAME=HEX");
    up->add_option("--signature", upgrade.signatures,
                   "a payload's minisign signature: NAME=FILE (repeatable; default: SOURCE.minisig when it exists)")
        ->type_name("NAME=FILE");
    up->add_flag("--allow-downgrade", upgrade.allowDowngrade, "install a signed engine older than [trust] min_version on purpose");
    up->add_flag("--dry-run", upgrade.dryRun, "verify and stage only; Docker keeps running untouched");
    up->add_option("--health-timeout", upgrade.healthTimeoutSec, "seconds the new engine gets to pass its health check")
        ->type_name("SEC");
    addWaitOptions(up, upgrade.wait);

    WaitOptions rollbackWait;
    std::string rollbackTo;
    auto* rollback = app.add_subcommand("rollback", "go back to the previous engine (the newest healthy backup set that differs)");
    rollback->add_option("--to", rollbackTo, "install this backup set (an ID from `armdockctl backups`)")->type_name("ID");
    addWaitOptions(rollback, rollbackWait);
    WaitOptions releaseWait;
    auto* release = app.add_subcommand("release", "install the packaged files the agent diverted again, and remove its diversions and holds");
    addWaitOptions(release, releaseWait);
    auto* cancel = app.add_subcommand("cancel", "stop the running transaction at its next safe point");
    auto* backups = app.add_subcommand("backups", "list the backup sets, newest first");
    backups->add_flag("--json", json, "print a JSON array");
    auto* payloads = app.add_subcommand("payloads", "list each payload's target and the SHA-256 of what is installed there");
    payloads->add_flag("--json", json, "print a JSON array");
    auto* reload = app.add_subcommand("reload", "re-read the config and take binaries waiting in the drop-in folder");
    auto* watch = app.add_subcommand("watch", "print each state change until interrupted");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? exitSuccess : exitUsage;
    }

    try {
        if (status->parsed())
            return runStatus(global, json);
        if (up->parsed())
            return runUpgrade(global, upgrade);
        if (rollback->parsed())
            return runRollback(global, rollbackWait, rollbackTo);
        if (release->parsed())
            return runRelease(global, releaseWait);
        if (cancel->parsed())
            return runCancel(global);
        if (backups->parsed())
            return runBackups(global, json);
        if (payloads->parsed())
            return runPayloads(global, json);
        if (reload->parsed())
            return runReload(global);
        if (watch->parsed())
            return runWatch(global);
    } catch (const CliError& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "armdockctl: %s\n", e.what());
        return e.code();
    } catch (const sdbus::Error& e) {
        const CliError mapped = fromDbusError(e, global.bus);
        std::fflush(stdout);
        std::fprintf(stderr, "armdockctl: %s\n", mapped.what());
        return mapped.code();
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "armdockctl: %s\n", e.what());
        return exitFailed;
    }
    return exitUsage;
}
