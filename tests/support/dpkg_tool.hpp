// A real dpkg database for the tests of package ownership: a package built
// with dpkg-deb from files the test chooses, installed with
// `dpkg --root ROOT -i`, and diversions made with dpkg-divert, as on a host.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace armdock::test {

inline void runDpkgTool(const std::string& command)
{
    // No "</dev/null": a command of the advice may read a pipe ("echo ... | dpkg --set-selections").
    if (std::system(("{ " + command + "; } >/dev/null 2>&1").c_str()) != 0)
        throw std::runtime_error("`" + command + "` failed");
}

// An empty dpkg database under `root` (what debootstrap leaves before its first package).
inline void makeDpkgRoot(const std::filesystem::path& root)
{
    std::filesystem::create_directories(root / "var/lib/dpkg/info");
    std::filesystem::create_directories(root / "var/lib/dpkg/updates");
    std::ofstream(root / "var/lib/dpkg/status", std::ios::app);
}

// Builds package `name` holding each (path in the root, file whose bytes it
// gets) and installs it into `root` with `dpkg --root`. `architecture`
// "all" or this machine's (a multiarch list is then named NAME:ARCH.list).
inline void installPackage(const std::filesystem::path& root, const std::string& name,
                           const std::vector<std::pair<std::string, std::filesystem::path>>& files, const std::string& architecture = "all")
{
    makeDpkgRoot(root);
    const std::filesystem::path tree = root.parent_path() / ("pkg-" + name);
    std::filesystem::remove_all(tree);
    std::filesystem::create_directories(tree / "DEBIAN");
    for (const auto& [path, from] : files) {
        const std::filesystem::path at = tree / std::filesystem::path(path).relative_path();
        std::filesystem::create_directories(at.parent_path());
        std::filesystem::copy_file(from, at);
        std::filesystem::permissions(at, std::filesystem::perms(0755));
    }
    std::ofstream(tree / "DEBIAN/control") << "Package: " << name << "\nVersion: 1.0\nArchitecture: " << architecture
                                           << (architecture == "all" ? "" : "\nMulti-Arch: same")
                                           << "\nMaintainer: armdock tests <tests@armdock.invalid>\nDescription: test package\n";
    const std::filesystem::path deb = root.parent_path() / (name + ".deb");
    runDpkgTool("dpkg-deb -b " + tree.string() + " " + deb.string());
    runDpkgTool("dpkg --root=" + root.string() + " -i " + deb.string());
    std::filesystem::remove_all(tree);
}

// A copy of `deb` without its maintainer scripts (dpkg --root runs them
// chrooted into the root, which has no shell): its files, file list and
// conffiles as Debian ships them. Made in `workDir`.
inline std::filesystem::path withoutMaintainerScripts(const std::filesystem::path& deb, const std::filesystem::path& workDir)
{
    const std::filesystem::path tree = workDir / (deb.stem().string() + "-tree");
    std::filesystem::remove_all(tree);
    runDpkgTool("dpkg-deb -R " + deb.string() + " " + tree.string());
    for (const char* script : {"preinst", "postinst", "prerm", "postrm", "config", "triggers"})
        std::filesystem::remove(tree / "DEBIAN" / script);
    const std::filesystem::path out = workDir / deb.filename();
    runDpkgTool("dpkg-deb -Znone -b " + tree.string() + " " + out.string());  // no compression: seconds, not a minute
    std::filesystem::remove_all(tree);
    return out;
}

// `dpkg --root ROOT --force-depends -i DEB` (the root holds no other package).
inline void installDeb(const std::filesystem::path& root, const std::filesystem::path& deb)
{
    makeDpkgRoot(root);
    runDpkgTool("dpkg --root=" + root.string() + " --force-depends -i " + deb.string());
}

// `dpkg-divert --local --divert PATH.distrib --add PATH` in `root` (no --rename: the file stays).
inline void divertLocally(const std::filesystem::path& root, const std::string& path)
{
    runDpkgTool("dpkg-divert --root " + root.string() + " --local --divert " + path + ".distrib --add " + path);
}

}  // namespace armdock::test
