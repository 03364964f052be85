#include "backup_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <system_error>

#include "durable_fs.hpp"
#include "sha_digest.hpp"
#include "unique_fd.hpp"

namespace armdock {

namespace fs = std::filesystem;

namespace {

std::uint64_t nowUsec()
{
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string toHex(const std::string& bytes)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string text;
    for (unsigned char c : bytes) {
        text += digits[c >> 4];
        text += digits[c & 0xf];
    }
    return text;
}

std::string fromHex(const std::string& text)
{
    if (text.size() % 2 != 0)
        throw std::runtime_error("odd hex length");
    std::string bytes;
    for (std::size_t i = 0; i < text.size(); i += 2)
        bytes += static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16));
    return bytes;
}

// Extended attributes are binary (a capability is a little-endian struct): hex in the manifest.
nlohmann::json attributesToJson(const FileAttributes& a)
{
    nlohmann::json j{{"uid", a.uid}, {"gid", a.gid}, {"mode", a.mode}};
    if (a.capability)
        j["security.capability"] = toHex(*a.capability);
    if (a.selinux)
        j["security.selinux"] = toHex(*a.selinux);
    return j;
}

FileAttributes attributesFromJson(const nlohmann::json& j)
{
    FileAttributes a;
    a.uid = j.at("uid").get<uid_t>();
    a.gid = j.at("gid").get<gid_t>();
    a.mode = j.at("mode").get<mode_t>() & 07777;
    if (j.contains("security.capability"))
        a.capability = fromHex(j.at("security.capability").get<std::string>());
    if (j.contains("security.selinux"))
        a.selinux = fromHex(j.at("security.selinux").get<std::string>());
    return a;
}

std::optional<BackupSet> readManifest(const fs::path& folder)
{
    try {
        auto j = nlohmann::json::parse(readSmallFile(folder / "manifest.json"));
        BackupSet set;
        set.id = j.at("id").get<std::string>();
        set.createdUsec = j.at("created_usec").get<std::uint64_t>();
        set.version = j.value("version", "");
        set.dir = folder;
        for (const auto& m : j.at("members")) {
            std::optional<FileAttributes> attributes;
            if (m.contains("attributes"))
                attributes = attributesFromJson(m.at("attributes"));
            set.members.push_back({m.at("name").get<std::string>(), m.at("target").get<std::string>(),
                                   m.at("present").get<bool>(), m.value("sha256", ""), m.value("link", ""), attributes});
        }
        return set;
    } catch (const std::exception&) {
        return std::nullopt;  // a half-written or foreign folder is not a backup
    }
}

constexpr std::size_t healthEntriesKept = 64;  // beyond this, entries of sets no longer kept are dropped

SetHealth setHealthFromString(const std::string& text)
{
    for (SetHealth h : {SetHealth::Healthy, SetHealth::Failed, SetHealth::Damaged})
        if (text == toString(h))
            return h;
    return SetHealth::Unknown;
}

}  // namespace

const char* toString(SetHealth health)
{
    switch (health) {
    case SetHealth::Healthy:
        return "healthy";
    case SetHealth::Failed:
        return "failed";
    case SetHealth::Damaged:
        return "damaged";
    case SetHealth::Unknown:
        break;
    }
    return "unknown";
}

std::vector<std::string> BackupSet::lacking(const std::vector<PayloadSpec>& payloads) const
{
    std::vector<std::string> names;
    for (const auto& p : payloads)
        if (!member(p.name))
            names.push_back(p.name);
    return names;
}

const SetMember* BackupSet::member(const std::string& name) const
{
    for (const auto& m : members)
        if (m.name == name)
            return &m;
    return nullptr;
}

std::string setIdOf(const std::vector<SetMember>& members)
{
    std::vector<const SetMember*> sorted;
    for (const auto& m : members)
        sorted.push_back(&m);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
    std::string text;
    // A link's line holds its text as well: two links to the same bytes under
    // other names are other sets. Plain files keep the lines of older ids.
    for (const auto* m : sorted)
        text += m->name + "=" + (!m->present ? std::string("absent") : m->isLink() ? "link:" + m->linkTarget + ":" + m->sha256 : m->sha256) +
                "\n";
    return sha256Hex(text.data(), text.size()).substr(0, 16);
}

SetMember describeTarget(const PayloadSpec& payload)
{
    SetMember m{payload.name, payload.path, false, "", ""};
    std::error_code ec;
    const auto status = fs::symlink_status(payload.path, ec);
    if (fs::is_symlink(status)) {
        m.present = true;
        m.linkTarget = fs::read_symlink(payload.path).string();
        if (fs::is_regular_file(fs::status(payload.path, ec)))  // what it names, through any further links
            m.sha256 = sha256OfFile(payload.path);
    } else if (fs::is_regular_file(status)) {
        m.present = true;
        m.sha256 = sha256OfFile(payload.path);
        m.attributes = readFileAttributes(payload.path);
    }
    return m;
}

std::vector<SetMember> describeInstalledSet(const std::vector<PayloadSpec>& payloads)
{
    std::vector<SetMember> members;
    for (const auto& p : payloads)
        members.push_back(describeTarget(p));
    return members;
}

bool holdsMember(const fs::path& path, const SetMember& member)
{
    std::error_code ec;
    const auto status = fs::symlink_status(path, ec);
    if (member.isLink())
        return fs::is_symlink(status) && fs::read_symlink(path, ec) == fs::path(member.linkTarget) && !ec;
    if (!fs::is_regular_file(status) || sha256OfFile(path) != member.sha256)
        return false;
    return !member.attributes || attributeDifference(*member.attributes, readFileAttributes(path)).empty();
}

BackupStore::BackupStore(fs::path stateDir) : dir_(stateDir / "backups"), healthFile_(stateDir / "set-health.json") {}

void BackupStore::writeManifest(const BackupSet& set, const fs::path& folder) const
{
    nlohmann::json members = nlohmann::json::array();
    for (const auto& m : set.members) {
        nlohmann::json member{{"name", m.name}, {"target", m.target.string()}, {"present", m.present}, {"sha256", m.sha256}};
        if (m.isLink())
            member["link"] = m.linkTarget;
        if (m.attributes)
            member["attributes"] = attributesToJson(*m.attributes);
        members.push_back(std::move(member));
    }
    nlohmann::json j{{"id", set.id}, {"created_usec", set.createdUsec}, {"version", set.version}, {"members", members}};
    writeFileDurably(folder / "manifest.json", j.dump(2) + "\n", 0600);
}

bool BackupStore::FolderStamp::operator==(const FolderStamp& o) const
{
    auto same = [](const timespec& x, const timespec& y) { return x.tv_sec == y.tv_sec && x.tv_nsec == y.tv_nsec; };
    return exists == o.exists && inode == o.inode && links == o.links && same(mtime, o.mtime) && same(ctime, o.ctime);
}

BackupStore::FolderStamp BackupStore::stampOfFolder() const
{
    FolderStamp stamp;
    struct stat st {};
    if (::stat(dir_.c_str(), &st) == 0) {
        stamp.exists = true;
        stamp.inode = st.st_ino;
        stamp.links = st.st_nlink;
        stamp.mtime = st.st_mtim;
        stamp.ctime = st.st_ctim;
    }
    return stamp;
}

std::vector<BackupSet> BackupStore::readFromDisk() const
{
    std::vector<BackupSet> sets;
    const auto health = readHealth();
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
        if (!entry.is_directory() || entry.path().filename().string().starts_with("."))
            continue;
        if (auto set = readManifest(entry.path())) {
            if (auto h = health.find(set->id); h != health.end())
                set->health = h->second;
            sets.push_back(std::move(*set));
        }
    }
    std::sort(sets.begin(), sets.end(), [](const auto& a, const auto& b) { return a.createdUsec > b.createdUsec; });
    return sets;
}

std::vector<BackupSet> BackupStore::list() const
{
    std::lock_guard lock(mutex_);
    // The stamp is taken before the read: a change during the read makes the next call read again.
    const FolderStamp now = stampOfFolder();
    if (!cached_ || !(stamp_ == now)) {
        cached_ = readFromDisk();
        stamp_ = now;
    }
    return *cached_;
}

void BackupStore::forget()
{
    std::lock_guard lock(mutex_);
    cached_.reset();
}

template <typename Change>
auto BackupStore::changing(Change change)
{
    try {
        auto result = change();
        forget();
        (void)list();
        return result;
    } catch (...) {
        forget();
        throw;
    }
}

BackupStore::BackUpResult BackupStore::backUp(const std::vector<PayloadSpec>& payloads,
                                              const std::function<std::string(const fs::path&)>& versionOf)
{
    return changing([&] { return backUpOnDisk(payloads, versionOf); });
}

BackupStore::BackUpResult BackupStore::backUpOnDisk(const std::vector<PayloadSpec>& payloads,
                                                      const std::function<std::string(const fs::path&)>& versionOf)
{
    fs::create_directories(dir_);
    auto members = describeInstalledSet(payloads);
    const std::string id = setIdOf(members);
    if (auto existing = find(id)) {
        if (existing->health != SetHealth::Damaged) {
            refreshAttributes(*existing, members);
            existing->createdUsec = nowUsec();
            writeManifest(*existing, existing->dir);
            return {*existing, false};
        }
        // Its files no longer match its manifest: make it again from the installed files.
        removeOnDisk(id);
        markHealth(id, SetHealth::Unknown);
    }
    const fs::path temporary = dir_ / (".incoming-" + id);
    fs::remove_all(temporary);
    fs::create_directory(temporary);
    ::chmod(temporary.c_str(), 0700);
    BackupSet set{id, nowUsec(), "", members, dir_ / id};
    for (auto& m : set.members) {
        if (!m.present)
            continue;
        const auto& spec = *std::find_if(payloads.begin(), payloads.end(), [&](auto& p) { return p.name == m.name; });
        if (!m.isLink()) {  // a link is kept as its text in the manifest
            // The copy carries what the file is as well (owner, mode, capabilities, label).
            std::string copied = m.attributes ? copyFileWithAttributes(spec.path, temporary / m.name, *m.attributes)
                                              : copyFileDurably(spec.path, temporary / m.name, spec.mode);
            if (copied != m.sha256)
                throw std::runtime_error("backup of " + spec.path.string() + " failed: the file changed while it was copied; retry the upgrade");
        }
        if (spec.engine && !spec.versionArgs.empty() && !m.sha256.empty())
            set.version = versionOf(m.isLink() ? spec.path : temporary / m.name);
    }
    writeManifest(set, temporary);
    fsyncDirectory(temporary);
    renameDurably(temporary, set.dir);
    return {set, true};
}

void BackupStore::refreshAttributes(BackupSet& set, const std::vector<SetMember>& installed) const
{
    bool changed = false;
    for (auto& kept : set.members) {
        auto now = std::find_if(installed.begin(), installed.end(), [&](const SetMember& m) { return m.name == kept.name; });
        if (now == installed.end() || !now->attributes || kept.isLink() || !kept.present || kept.attributes == now->attributes)
            continue;
        // The same bytes, installed with other attributes now (chmod, setcap by hand): the copy takes them.
        const fs::path file = set.fileOf(kept.name);
        UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
        if (!fd)
            throw std::system_error(errno, std::generic_category(), "cannot open the backup copy " + file.string());
        applyFileAttributes(fd.get(), file, *now->attributes, now->target);
        fsyncFd(fd.get(), file);
        kept.attributes = now->attributes;
        changed = true;
    }
    if (changed)
        spdlog::info("backup set {}: its copies now carry the owner, mode and extended attributes of the installed files", set.id);
}

std::optional<BackupSet> BackupStore::find(const std::string& id) const
{
    if (id.empty() || id.find('/') != std::string::npos || id.starts_with("."))
        return std::nullopt;
    auto set = readManifest(dir_ / id);
    if (set)
        set->health = healthOf(id);
    return set;
}

void BackupStore::remove(const std::string& id)
{
    changing([&] {
        removeOnDisk(id);
        return 0;
    });
}

void BackupStore::removeOnDisk(const std::string& id)
{
    if (!find(id))
        return;
    // Rename first so that a crash never leaves a half-deleted set that looks whole.
    const fs::path doomed = dir_ / (".removing-" + id);
    fs::remove_all(doomed);
    renameDurably(dir_ / id, doomed);
    fs::remove_all(doomed);
}

void BackupStore::prune(unsigned keep, const std::string& protectId)
{
    changing([&] {
        auto sets = list();
        unsigned kept = 0;
        for (const auto& set : sets) {
            if (kept < keep || set.id == protectId) {
                ++kept;
                continue;
            }
            removeOnDisk(set.id);
        }
        return 0;
    });
}

BackupSet BackupStore::keepFiles(const std::vector<std::pair<SetMember, fs::path>>& files, const std::string& version)
{
    return changing([&] { return keepFilesOnDisk(files, version); });
}

BackupSet BackupStore::keepFilesOnDisk(const std::vector<std::pair<SetMember, fs::path>>& files, const std::string& version)
{
    fs::create_directories(dir_);
    std::vector<SetMember> members;
    for (const auto& f : files)
        members.push_back(f.first);
    const std::string id = setIdOf(members);
    if (auto existing = find(id))
        return *existing;
    const fs::path temporary = dir_ / (".incoming-" + id);
    fs::remove_all(temporary);
    fs::create_directory(temporary);
    BackupSet set{id, nowUsec(), version, members, dir_ / id};
    for (const auto& [member, source] : files) {
        if (!member.present || member.isLink())
            continue;
        const std::string copied = member.attributes ? copyFileWithAttributes(source, temporary / member.name, *member.attributes)
                                                     : copyFileDurably(source, temporary / member.name, 0755);
        if (copied != member.sha256)
            throw std::runtime_error("cannot keep " + source.string() + ": it no longer holds the file of payload " + member.name);
    }
    writeManifest(set, temporary);
    fsyncDirectory(temporary);
    renameDurably(temporary, set.dir);
    set.health = healthOf(id);
    return set;
}

std::map<std::string, SetHealth> BackupStore::readHealth() const
{
    std::map<std::string, SetHealth> health;
    try {
        auto j = nlohmann::json::parse(readSmallFile(healthFile_));
        for (const auto& [id, value] : j.items())
            health[id] = setHealthFromString(value.get<std::string>());
    } catch (const std::exception&) {
        // None yet, or unreadable: every set is unknown until it is checked again.
    }
    return health;
}

void BackupStore::writeHealth(const std::map<std::string, SetHealth>& health) const
{
    nlohmann::json j = nlohmann::json::object();
    std::error_code ec;
    for (const auto& [id, h] : health)
        if (health.size() <= healthEntriesKept || fs::exists(dir_ / id, ec))
            j[id] = toString(h);
    writeFileDurably(healthFile_, j.dump(1) + "\n", 0600);
}

SetHealth BackupStore::healthOf(const std::string& id) const
{
    const auto health = readHealth();
    auto it = health.find(id);
    return it == health.end() ? SetHealth::Unknown : it->second;
}

void BackupStore::markHealth(const std::string& id, SetHealth verdict)
{
    if (id.empty())
        return;
    changing([&] {
        auto health = readHealth();
        const SetHealth now = health.count(id) ? health[id] : SetHealth::Unknown;
        SetHealth next = now;
        if (verdict == SetHealth::Healthy && now != SetHealth::Damaged)
            next = SetHealth::Healthy;
        else if (verdict == SetHealth::Failed && now == SetHealth::Unknown)
            next = SetHealth::Failed;
        else if (verdict == SetHealth::Damaged || verdict == SetHealth::Unknown)
            next = verdict;
        if (next == now && health.count(id))
            return 0;
        if (next == SetHealth::Unknown)
            health.erase(id);
        else
            health[id] = next;
        writeHealth(health);
        return 0;
    });
}

}  // namespace armdock
