#include "package_owner.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <stdexcept>
#include <system_error>

#include "durable_fs.hpp"

namespace armdock {

namespace fs = std::filesystem;

namespace {

// The names dpkg may list one file under: the path, and its other name
// across the merged-/usr links (/bin, /sbin, /lib* are links into /usr).
std::vector<std::string> namesOf(const std::string& path)
{
    std::vector<std::string> names{path};
    for (const char* top : {"/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/"}) {
        const std::string usr = std::string("/usr") + top;
        if (path.starts_with(top))
            names.push_back("/usr" + path);
        else if (path.starts_with(usr))
            names.push_back(path.substr(4));
    }
    return names;
}

// The path below `root` ("/usr/bin/docker"), or "" when `target` is not below it.
std::string pathInRoot(const fs::path& root, const fs::path& target)
{
    const fs::path relative = target.lexically_normal().lexically_relative(root.lexically_normal());
    if (relative.empty() || *relative.begin() == "..")
        return {};
    return "/" + relative.string();
}

// Lines of a small text file; none when it does not exist.
std::vector<std::string> linesOf(const fs::path& file)
{
    std::vector<std::string> lines;
    std::error_code ec;
    if (!fs::exists(file, ec))
        return lines;
    std::ifstream in(file);
    if (!in)
        throw std::runtime_error("cannot read dpkg's " + file.string());
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

}  // namespace

std::map<fs::path, PackageOwnership> findPackageOwners(const fs::path& root, const std::vector<fs::path>& targets)
{
    std::map<fs::path, PackageOwnership> owners;
    std::map<std::string, std::vector<fs::path>> targetsByName;  // a name dpkg may use -> the targets it stands for
    for (const auto& target : targets) {
        owners[target];
        const std::string inRoot = pathInRoot(root, target);
        if (inRoot.empty())
            continue;
        for (const auto& name : namesOf(inRoot))
            targetsByName[name].push_back(target);
    }
    const fs::path admin = root / "var/lib/dpkg";
    std::error_code ec;
    if (targetsByName.empty() || !fs::is_directory(admin / "info", ec))
        return owners;

    // The diversions file: triples of lines (from, to, the diverting package or ":" for a local one).
    const auto diversions = linesOf(admin / "diversions");
    for (std::size_t i = 0; i + 2 < diversions.size(); i += 3) {
        const auto it = targetsByName.find(diversions[i]);
        if (it == targetsByName.end())
            continue;
        for (const auto& target : it->second) {
            owners[target].divertedTo = diversions[i + 1];
            owners[target].divertedBy = diversions[i + 2] == ":" ? "local" : diversions[i + 2];
        }
    }

    // Each installed package's file list (info/PKG.list or PKG:ARCH.list).
    std::vector<fs::path> lists;
    for (const auto& entry : fs::directory_iterator(admin / "info", ec))
        if (entry.path().extension() == ".list")
            lists.push_back(entry.path());
    std::sort(lists.begin(), lists.end());
    for (const auto& list : lists) {
        std::string text;
        try {
            text = readSmallFile(list);
        } catch (const std::exception& e) {
            throw std::runtime_error("cannot read dpkg's file list " + list.string() + ": " + e.what());
        }
        std::string package = list.stem().string();
        package = package.substr(0, package.find(':'));  // docker.io:amd64 -> docker.io
        for (const auto& [name, named] : targetsByName) {
            // A whole line: preceded by a newline (or the start), followed by one (or the end).
            for (auto at = text.find(name); at != std::string::npos; at = text.find(name, at + 1)) {
                const bool startsLine = at == 0 || text[at - 1] == '\n';
                const auto end = at + name.size();
                const bool endsLine = end == text.size() || text[end] == '\n';
                if (!startsLine || !endsLine)
                    continue;
                for (const auto& target : named) {
                    auto& owner = owners[target];
                    if (std::find(owner.packages.begin(), owner.packages.end(), package) == owner.packages.end())
                        owner.packages.push_back(package);
                    if (owner.listedAs.empty())
                        owner.listedAs = name;
                }
                break;
            }
        }
    }
    return owners;
}

std::set<std::string> heldPackages(const fs::path& root)
{
    std::set<std::string> held;
    std::string package;
    for (const auto& line : linesOf(root / "var/lib/dpkg/status")) {
        if (line.starts_with("Package: "))
            package = line.substr(9);
        else if (line.starts_with("Status: hold ") && !package.empty())
            held.insert(package);
        else if (line.empty())
            package.clear();
    }
    return held;
}

}  // namespace armdock
