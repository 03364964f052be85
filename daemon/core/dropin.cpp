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
#include "sha_digest.hpp"
#include "source_verifier.hpp"
#include "unique_fd.hpp"

namespace armdock {

namespace fs = std::filesystem;

namespace {

// A digest file holds one line ("HEX  NAME\n" as sha256sum writes it).
constexpr off_t maxDigestFileSize = 4096;

// Reads a digest file without ever blocking: O_NONBLOCK and O_NOFOLLOW, so a
// FIFO or a link is refused at once instead of read; nothing larger than a
// line is read. Throws std::runtime_error saying why it was refused.
std::string readDigestFile(const fs::path& path)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
    if (!fd) {
        const int error = errno;
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
            throw std::runtime_error("is " + fileKind(st.st_mode) + ", not a file holding a SHA-256 digest; it was not read");
        throw std::runtime_error(std::string("cannot open it: ") + std::strerror(error));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        throw std::runtime_error(std::string("cannot fstat it: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw std::runtime_error("is " + fileKind(st.st_mode) + ", not a file holding a SHA-256 digest; it was not read");
    if (st.st_size > maxDigestFileSize)
        throw std::runtime_error("is " + std::to_string(st.st_size) + " bytes; a digest file holds one line (at most " +
                                 std::to_string(maxDigestFileSize) + " bytes); it was not read");
    std::string text(static_cast<std::size_t>(st.st_size), '\0');
    const ssize_t got = ::pread(fd.get(), text.data(), text.size(), 0);
    if (got < 0)
        throw std::runtime_error(std::string("cannot read it: ") + std::strerror(errno));
    text.resize(static_cast<std::size_t>(got));
    return text;
}

}  // namespace

DropinScan scanDropinFolder(const fs::path& dir, const Config& config)
{
    DropinScan scan;
    std::map<std::string, std::string> refusedDigests;  // payload name -> why its NAME.sha256 was refused
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
                text = readDigestFile(path);
            } catch (const std::exception& e) {
                scan.refused.push_back({path, e.what()});
                refusedDigests[payload] = e.what();
                continue;
            }
            std::string digest = text.substr(0, text.find_first_of(" \t\r\n"));
            if (!isSha256Hex(digest)) {
                scan.refused.push_back({path, "does not start with a SHA-256 digest (64 hex digits)"});
                refusedDigests[payload] = scan.refused.back().second;
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
    // A binary whose digest file was refused is not installed unchecked.
    for (const auto& [payload, why] : refusedDigests) {
        auto file = scan.files.find(payload);
        if (file == scan.files.end())
            continue;
        scan.refused.push_back({file->second, "its digest file " + payload + ".sha256 was refused (" + why + ")"});
        std::erase(scan.taken, fs::path(file->second));
        scan.files.erase(file);
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
