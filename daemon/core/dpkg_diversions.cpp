#include "dpkg_diversions.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "child_process.hpp"
#include "durable_fs.hpp"
#include "package_owner.hpp"
#include "sha_digest.hpp"

namespace armdock {

namespace fs = std::filesystem;

namespace {

constexpr std::chrono::seconds dpkgTimeout{120};  // a stuck dpkg is killed

std::vector<std::string> withRoot(const std::string& program, const fs::path& root, std::vector<std::string> args)
{
    std::vector<std::string> argv{program};
    if (root.lexically_normal() != "/")
        argv.push_back("--root=" + root.string());
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

void run(const std::vector<std::string>& argv)
{
    const ChildOutcome outcome = runChild(argv, dpkgTimeout);
    if (outcome.end == ChildOutcome::End::Exited && outcome.code == 0)
        return;
    const std::string how = outcome.end == ChildOutcome::End::TimedOut ? "did not finish within 120 s"
                            : outcome.end == ChildOutcome::End::Signalled ? "was killed by signal " + std::to_string(outcome.code)
                                                                          : "exited with status " + std::to_string(outcome.code);
    throw std::runtime_error("`" + joinCommand(argv) + "` " + how + " (it said: " + lastLine(outcome.output) + ")");
}

// Package names are Debian's ([a-z0-9][a-z0-9+.-]+): nothing a shell could read otherwise.
void checkPackageName(const std::string& package)
{
    const bool ok = !package.empty() && std::all_of(package.begin(), package.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '.' || c == '-';
    });
    if (!ok)
        throw std::runtime_error("\"" + package + "\" is not a Debian package name");
}

// `echo "PACKAGE WANT" | dpkg --set-selections` (runChild gives no stdin).
void setSelection(const fs::path& root, const std::string& package, const std::string& want)
{
    checkPackageName(package);
    const std::string dpkg = root.lexically_normal() == "/" ? "dpkg" : "dpkg --root=" + root.string();
    run({"/bin/sh", "-c", "echo '" + package + " " + want + "' | " + dpkg + " --set-selections"});
}

nlohmann::json toJson(const AgentDiversion& d)
{
    return {{"payload", d.payload},         {"target", d.target.string()},       {"listed_as", d.listedAs}, {"package", d.package},
            {"held_by_agent", d.heldByAgent}, {"transaction", d.transaction}, {"committed", d.committed}};
}

}  // namespace

DiversionRecord::DiversionRecord(fs::path file) : file_(std::move(file)) {}

std::vector<AgentDiversion> DiversionRecord::load() const
{
    std::vector<AgentDiversion> out;
    std::error_code ec;
    if (!fs::exists(file_, ec))
        return out;
    try {
        const auto j = nlohmann::json::parse(readSmallFile(file_));
        for (const auto& d : j.at("diversions"))
            out.push_back({d.at("payload").get<std::string>(), d.at("target").get<std::string>(), d.at("listed_as").get<std::string>(),
                           d.at("package").get<std::string>(), d.at("held_by_agent").get<bool>(), d.at("transaction").get<std::string>(),
                           d.at("committed").get<bool>()});
    } catch (const std::exception& e) {
        throw std::runtime_error("cannot read the record of the agent's dpkg diversions " + file_.string() + ": " + e.what());
    }
    return out;
}

void DiversionRecord::save(const std::vector<AgentDiversion>& diversions) const
{
    if (diversions.empty()) {
        removeDurably(file_);
        return;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const auto& d : diversions)
        list.push_back(toJson(d));
    writeFileDurably(file_, nlohmann::json{{"diversions", list}}.dump(2) + "\n", 0600);
}

fs::path distribPath(const AgentDiversion& d) { return d.target.string() + ".distrib"; }

void makeDiversion(const fs::path& root, const AgentDiversion& d)
{
    const fs::path distrib = distribPath(d);
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(distrib, ec))) {
        if (::link(d.target.c_str(), distrib.c_str()) != 0 && errno != EEXIST)
            throw std::runtime_error("cannot link " + distrib.string() + " to the packaged " + d.target.string() + ": " + std::strerror(errno));
        fsyncDirectory(distrib.parent_path());
    }
    run(withRoot("dpkg-divert", root, {"--local", "--no-rename", "--divert", d.listedAs + ".distrib", "--add", d.listedAs}));
    if (d.heldByAgent)
        setSelection(root, d.package, "hold");
}

void undoDiversion(const fs::path& root, const AgentDiversion& d, bool distribGoes)
{
    run(withRoot("dpkg-divert", root, {"--local", "--no-rename", "--remove", d.listedAs}));
    const fs::path distrib = distribPath(d);
    std::error_code ec;
    if (fs::is_regular_file(fs::symlink_status(distrib, ec)) &&
        (distribGoes || (fs::exists(d.target, ec) && sha256OfFile(distrib) == sha256OfFile(d.target))))
        removeDurably(distrib);
    if (d.heldByAgent)
        setSelection(root, d.package, "install");
}

std::vector<std::string> reconcileDiversions(const fs::path& root, const DiversionRecord& record)
{
    std::vector<std::string> said;
    const auto all = record.load();
    if (all.empty())
        return said;
    std::vector<fs::path> targets;
    for (const auto& d : all)
        targets.push_back(d.target);
    const auto owners = findPackageOwners(root, targets);
    std::vector<AgentDiversion> kept;
    for (auto d : all) {
        const PackageOwnership& owner = owners.at(d.target);
        const fs::path distrib = distribPath(d);
        std::error_code ec;
        const bool distribThere = fs::is_regular_file(fs::symlink_status(distrib, ec));
        const bool targetThere = fs::is_regular_file(fs::symlink_status(d.target, ec));
        const bool packagedInstalled = distribThere && targetThere && sha256OfFile(distrib) == sha256OfFile(d.target);
        const bool inDpkg = owner.diverted() && owner.divertedTo == d.listedAs + ".distrib";
        try {
            if (!inDpkg) {
                // Never made (a divert that failed first), or removed by hand: only what the agent left goes.
                if (packagedInstalled)
                    removeDurably(distrib);
                if (d.heldByAgent)
                    setSelection(root, d.package, "install");
                said.push_back("payload " + d.payload + ": " + d.listedAs + " is not diverted: its record is dropped" +
                               (d.heldByAgent ? " and " + d.package + " no longer held" : ""));
                continue;
            }
            if (packagedInstalled) {
                undoDiversion(root, d);
                said.push_back("payload " + d.payload + ": the packaged " + d.listedAs + " is installed again: its diversion was removed" +
                               (d.heldByAgent ? " and " + d.package + " no longer held" : ""));
                continue;
            }
        } catch (const std::exception& e) {
            said.push_back("payload " + d.payload + ": cannot undo the diversion of " + d.listedAs + ": " + e.what() +
                           "; it stays recorded in " + record.file().string() + " and is tried again after the next transaction");
        }
        d.committed = inDpkg && !packagedInstalled;
        kept.push_back(d);
    }
    record.save(kept);
    return said;
}

}  // namespace armdock
