#include "apt_autoupdate.hpp"

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>
#include <system_error>
#include <vector>

namespace armdock {

namespace fs = std::filesystem;

namespace {

std::string textOf(const fs::path& file)
{
    std::ifstream in(file);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// The files of a conf.d-style folder in the order their program reads them (by name).
std::vector<fs::path> filesIn(const fs::path& folder)
{
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(folder, ec))
        if (e.is_regular_file(ec) && !e.path().filename().string().starts_with("."))
            files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

// apt.conf text without its comments: // to the end of a line and /* ... */
// outside quotes, and lines starting with #.
std::string withoutAptComments(const std::string& text)
{
    std::string out;
    bool quoted = false, lineStart = true;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (!quoted && lineStart && c == '#') {
            i = std::min(text.find('\n', i), text.size()) - 1;
            continue;
        }
        if (!quoted && c == '/' && i + 1 < text.size() && text[i + 1] == '/') {
            i = std::min(text.find('\n', i), text.size()) - 1;
            continue;
        }
        if (!quoted && c == '/' && i + 1 < text.size() && text[i + 1] == '*') {
            const auto end = text.find("*/", i + 2);
            i = end == std::string::npos ? text.size() : end + 1;
            continue;
        }
        if (c == '"')
            quoted = !quoted;
        if (c == '\n')
            quoted = false;
        lineStart = c == '\n' || (lineStart && (c == ' ' || c == '\t'));
        out.push_back(c);
    }
    return out;
}

// Perl text without its # comments (a needrestart.conf).
std::string withoutPerlComments(const std::string& text)
{
    static const std::regex comments(R"(#[^\n]*)");
    return std::regex_replace(text, comments, "");
}

std::string shown(const fs::path& root, const fs::path& file)
{
    return root.lexically_normal() == "/" ? file.string() : file.string() + " (under " + root.string() + ")";
}

}  // namespace

std::string unattendedUpgradeWarning(const fs::path& root, const std::string& package, bool held)
{
    std::error_code ec;
    if (held || !fs::exists(root / "usr/bin/unattended-upgrade", ec))
        return {};
    // The last APT::Periodic::Unattended-Upgrade setting wins; and every Package-Blacklist entry.
    static const std::regex periodic(R"re(APT::Periodic::Unattended-Upgrade\s+"([^"]*)")re");
    static const std::regex blacklistBlock(R"re(Unattended-Upgrade::Package-Blacklist\s*\{([^}]*)\})re");
    static const std::regex entry(R"re("([^"]+)")re");
    std::string on;
    fs::path onIn;
    std::vector<std::string> blacklist;
    for (const auto& file : filesIn(root / "etc/apt/apt.conf.d")) {
        const std::string text = withoutAptComments(textOf(file));
        for (std::sregex_iterator m(text.begin(), text.end(), periodic), end; m != end; ++m) {
            on = (*m)[1];
            onIn = "/" + file.lexically_relative(root).string();
        }
        for (std::sregex_iterator b(text.begin(), text.end(), blacklistBlock), end; b != end; ++b) {
            const std::string block = (*b)[1];
            for (std::sregex_iterator e(block.begin(), block.end(), entry), stop; e != stop; ++e)
                blacklist.push_back((*e)[1]);
        }
    }
    if (on.empty() || on == "0")
        return {};
    for (const auto& pattern : blacklist) {
        if (pattern == package)
            return {};
        try {
            if (std::regex_match(package, std::regex(pattern)))
                return {};
        } catch (const std::regex_error&) {
        }
    }
    return "unattended-upgrades is on (APT::Periodic::Unattended-Upgrade \"" + on + "\" in " + shown(root, onIn) + ") and " + package +
           " is neither held nor in Unattended-Upgrade::Package-Blacklist: an update of " + package +
           " is installed unattended (and its maintainer scripts restart Docker). Hold it (`" +
           (root.lexically_normal() == "/" ? "apt-mark hold " + package
                                           : "echo '" + package + " hold' | dpkg --root " + root.string() + " --set-selections") +
           "`) or add \"" + package + "\" to Unattended-Upgrade::Package-Blacklist";
}

std::string needrestartWarning(const fs::path& root)
{
    std::error_code ec;
    if (!fs::exists(root / "usr/sbin/needrestart", ec))
        return {};
    static const std::regex restartMode(R"re(\$nrconf\{restart\}\s*=\s*['"](\w)['"])re");
    static const std::regex containerdKept(R"re(qr\(\^?containerd[^)]*\)\s*=>\s*0|\$nrconf\{override_rc\}\{\s*qr\(\^?containerd[^)]*\)\s*\}\s*=\s*0)re");
    std::string mode = "i";  // needrestart's default: ask, with the services to restart ticked
    bool kept = false;
    std::vector<fs::path> files{root / "etc/needrestart/needrestart.conf"};
    for (const auto& f : filesIn(root / "etc/needrestart/conf.d"))
        if (f.extension() == ".conf")
            files.push_back(f);
    for (const auto& file : files) {
        const std::string text = withoutPerlComments(textOf(file));
        for (std::sregex_iterator m(text.begin(), text.end(), restartMode), end; m != end; ++m)
            mode = (*m)[1];
        kept = kept || std::regex_search(text, containerdKept);
    }
    if (mode == "l" || kept)
        return {};
    return std::string("needrestart is installed and restarts services after apt upgrades a library they use ($nrconf{restart} = '") + mode +
           "'" + (mode == "i" ? ", needrestart's default: it asks, with containerd ticked" : "") +
           "): containerd.service would be restarted outside the agent's transactions (containers without live-restore stop). "
           "Keep it: put `$nrconf{override_rc}{qr(^containerd)} = 0;` in " +
           shown(root, "/etc/needrestart/conf.d/armdock.conf");
}

}  // namespace armdock
