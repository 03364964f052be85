#include "dropin.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <system_error>

#include "durable_fs.hpp"
#include "sha_digest.hpp"

namespace armdock {

namespace fs = std::filesystem;

DropinScan scanDropinFolder(const fs::path& dir, const Config& config)
{
    DropinScan scan;
    std::error_code ec;
    std::vector<fs::path> entries;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        entries.push_back(entry.path());
    std::sort(entries.begin(), entries.end());
    for (const auto& path : entries) {
        const std::string name = path.filename().string();
        if (name.starts_with("."))
            continue;  // an upload in progress: not ours yet
        if (name.ends_with(".sha256")) {
            const std::string payload = name.substr(0, name.size() - 7);
            if (!config.findPayload(payload)) {
                scan.refused.push_back({path, "digest file for unknown payload '" + payload + "'"});
                continue;
            }
            std::string text;
            try {
                text = readSmallFile(path);
            } catch (const std::exception& e) {
                scan.refused.push_back({path, e.what()});
                continue;
            }
            std::string digest = text.substr(0, text.find_first_of(" \t\r\n"));
            if (!isSha256Hex(digest)) {
                scan.refused.push_back({path, "does not start with a SHA-256 digest (64 hex digits)"});
                continue;
            }
            for (auto& c : digest)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            scan.sha256[payload] = digest;
            scan.taken.push_back(path);
            continue;
        }
        if (!config.findPayload(name)) {
            std::string known;
            for (const auto& p : config.payloads)
                known += (known.empty() ? "" : ", ") + p.name;
            scan.refused.push_back({path, "unknown payload name '" + name + "' (the config knows: " + known + ")"});
            continue;
        }
        scan.files[name] = path.string();
        scan.taken.push_back(path);
    }
    // A digest without its binary is refused too, or it would wait there forever.
    for (auto it = scan.sha256.begin(); it != scan.sha256.end();) {
        if (!scan.files.count(it->first)) {
            fs::path file = dir / (it->first + ".sha256");
            scan.refused.push_back({file, "digest file without its binary '" + it->first + "'"});
            std::erase(scan.taken, file);
            it = scan.sha256.erase(it);
        } else {
            ++it;
        }
    }
    return scan;
}

fs::path moveAside(const fs::path& file, const fs::path& rejectedDir, const std::string& reason)
{
    fs::create_directories(rejectedDir);
    ::chmod(rejectedDir.c_str(), 0700);
    char stamp[32];
    std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", std::gmtime(&now));
    fs::path destination = rejectedDir / (std::string(stamp) + "-" + file.filename().string());
    for (int n = 1; fs::exists(destination); ++n)
        destination = rejectedDir / (std::string(stamp) + "-" + std::to_string(n) + "-" + file.filename().string());
    std::error_code ec;
    fs::rename(file, destination, ec);
    if (ec == std::errc::cross_device_link) {
        fs::copy_file(file, destination);
        fs::remove(file);
    } else if (ec) {
        throw std::system_error(ec, "cannot move " + file.string() + " to " + destination.string());
    }
    writeFileDurably(destination.string() + ".reason", reason + "\n", 0600);
    fsyncDirectory(file.parent_path());
    return destination;
}

}  // namespace armdock
