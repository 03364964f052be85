#include "dropin.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "durable_fs.hpp"
#include "side_file.hpp"
#include "sha_digest.hpp"
#include "source_verifier.hpp"
#include "unique_fd.hpp"

namespace armdock {

namespace fs = std::filesystem;

namespace {

// A digest file holds one line ("HEX  NAME\n" as sha256sum writes it); a
// minisign signature four short ones.
constexpr off_t maxSideFileSize = 4096;

}  // namespace

DropinScan scanDropinFolder(const fs::path& dir, const Config& config)
{
    DropinScan scan;
    // Payload name -> why one of its side files (NAME.sha256, NAME.minisig) was refused.
    std::map<std::string, std::string> refusedSideFiles;
    std::map<std::string, std::vector<fs::path>> sideFilesOf;  // payload name -> its side files taken
    std::error_code ec;
    std::vector<fs::path> entries;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        entries.push_back(entry.path());
    std::sort(entries.begin(), entries.end());
    for (const auto& path : entries) {
        const std::string name = path.filename().string();
        if (name.starts_with("."))
            continue;  // an upload in progress: not ours yet
        const bool digestFile = name.ends_with(".sha256");
        const bool signatureFile = name.ends_with(".minisig");
        if (digestFile || signatureFile) {
            const std::string payload = name.substr(0, name.rfind('.'));
            const std::string kind = digestFile ? "digest file" : "signature file";
            if (!config.findPayload(payload)) {
                scan.refused.push_back({path, kind + " for unknown payload '" + payload + "'"});
                continue;
            }
            std::string text;
            try {
                text = readSmallRegularFile(path, maxSideFileSize, digestFile ? "a SHA-256 digest" : "a minisign signature");
            } catch (const std::exception& e) {
                scan.refused.push_back({path, e.what()});
                refusedSideFiles[payload] = "its " + kind + " " + name + " was refused (" + e.what() + ")";
                continue;
            }
            if (signatureFile) {
                if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
                    scan.refused.push_back({path, "is empty; a minisign signature (minisign -S) has 4 lines"});
                    refusedSideFiles[payload] = "its " + kind + " " + name + " was refused (" + scan.refused.back().second + ")";
                    continue;
                }
                scan.signatures[payload] = text;  // checked against the trusted keys when the upgrade is planned
            } else {
                std::string digest = text.substr(0, text.find_first_of(" \t\r\n"));
                if (!isSha256Hex(digest)) {
                    scan.refused.push_back({path, "does not start with a SHA-256 digest (64 hex digits)"});
                    refusedSideFiles[payload] = "its " + kind + " " + name + " was refused (" + scan.refused.back().second + ")";
                    continue;
                }
                for (auto& c : digest)
                    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                scan.sha256[payload] = digest;
            }
            sideFilesOf[payload].push_back(path);
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
    auto dropPayload = [&](const std::string& payload, const std::string& why) {
        for (const auto& side : sideFilesOf[payload]) {
            scan.refused.push_back({side, why});
            std::erase(scan.taken, side);
        }
        sideFilesOf[payload].clear();
        scan.sha256.erase(payload);
        scan.signatures.erase(payload);
    };
    // A binary one of whose side files was refused is not installed unchecked (its other side files go with it).
    for (const auto& [payload, why] : refusedSideFiles) {
        auto file = scan.files.find(payload);
        if (file == scan.files.end())
            continue;
        scan.refused.push_back({file->second, why});
        std::erase(scan.taken, fs::path(file->second));
        scan.files.erase(file);
        dropPayload(payload, "its binary was refused with it: " + why);
    }
    // A side file without its binary is refused too, or it would wait there forever.
    for (const auto& [payload, sides] : std::map(sideFilesOf)) {
        if (scan.files.count(payload))
            continue;
        for (const auto& side : sides) {
            const bool digest = side.extension() == ".sha256";
            scan.refused.push_back({side, std::string(digest ? "digest" : "signature") + " file without its binary '" + payload + "'"});
            std::erase(scan.taken, side);
        }
        sideFilesOf.erase(payload);
        scan.sha256.erase(payload);
        scan.signatures.erase(payload);
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
    std::string reasonSuffix;
    for (int n = 1; fs::exists(destination); ++n)
        destination = rejectedDir / (std::string(stamp) + "-" + std::to_string(n) + "-" + file.filename().string());
    std::error_code ec;
    fs::rename(file, destination, ec);
    if (ec == std::errc::cross_device_link && fs::is_regular_file(fs::symlink_status(file))) {
        fs::copy_file(file, destination);
        fs::remove(file);
    } else if (ec == std::errc::cross_device_link) {
        // A FIFO or device is never copied (reading it could block): removed, its reason kept.
        fs::remove(file);
        reasonSuffix = " (it was not a regular file and could not be moved here: it was removed)";
    } else if (ec) {
        throw std::system_error(ec, "cannot move " + file.string() + " to " + destination.string());
    }
    writeFileDurably(destination.string() + ".reason", reason + reasonSuffix + "\n", 0600);
    fsyncDirectory(file.parent_path());
    return destination;
}

}  // namespace armdock
