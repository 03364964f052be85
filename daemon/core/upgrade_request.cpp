#include "upgrade_request.hpp"

#include <algorithm>
#include <cctype>

#include "errors.hpp"
#include "minisign.hpp"
#include "sha_digest.hpp"

namespace armdock {

namespace {

constexpr std::string_view shaPrefix = "sha256.";
constexpr std::string_view sourcePrefix = "source.";
constexpr std::string_view signaturePrefix = "signature.";
constexpr std::size_t maxLabelSize = 4096;  // PATH_MAX

[[noreturn]] void invalid(const std::string& message)
{
    throw AgentError(ErrorKind::InvalidArgument, message);
}

std::string signatureOf(const OptionValue& value)
{
    struct Visitor {
        std::string operator()(bool) const { return "b"; }
        std::string operator()(std::uint32_t) const { return "u"; }
        std::string operator()(const std::string&) const { return "s"; }
        std::string operator()(const UnsupportedOptionType& other) const { return other.signature; }
    };
    return std::visit(Visitor{}, value);
}

template <typename T>
const T& expect(const std::string& key, const OptionValue& value, std::string_view typeName, std::string_view signature)
{
    if (const T* typed = std::get_if<T>(&value))
        return *typed;
    invalid("option " + key + " must be " + std::string(typeName) + " (" + std::string(signature) + "), got a value of type "
            + signatureOf(value));
}

std::string payloadNames(const Config& config)
{
    std::string names;
    for (const auto& payload : config.payloads)
        names += (names.empty() ? "" : ", ") + payload.name;
    return names;
}

void checkFiles(const std::map<std::string, std::string>& files, const Config& config, SourceForm form)
{
    if (files.empty())
        invalid(form == SourceForm::Paths ? "no files given; map at least one payload (" + payloadNames(config) + ") to a source path"
                                          : "no files given; map at least one payload (" + payloadNames(config) + ") to a descriptor");
    for (const auto& [name, path] : files) {
        if (!config.findPayload(name))
            invalid("unknown payload \"" + name + "\"; the configured payloads are " + payloadNames(config));
        if (form == SourceForm::Paths && (path.empty() || path.front() != '/'))
            invalid("payload " + name + ": source path \"" + path + "\" is not absolute; give the full path starting with /");
    }
}

std::string lowerCase(std::string text)
{
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
}

void readDigest(const std::string& key, const OptionValue& value, const std::map<std::string, std::string>& files,
                UpgradeRequest& request)
{
    std::string name = key.substr(shaPrefix.size());
    const std::string& digest = expect<std::string>(key, value, "a string", "s");
    if (!files.contains(name))
        invalid("option " + key + " is for payload \"" + name + "\", which is not among the files given");
    if (!isSha256Hex(digest))
        invalid("option " + key + " must be 64 hex digits (a SHA-256), got \"" + digest + "\"");
    request.sha256[name] = lowerCase(digest);
}

// source.<name>: what the client calls the file it passed; shown in messages
// and logs, so one printable line.
void readSourceLabel(const std::string& key, const OptionValue& value, UpgradeRequest& request)
{
    std::string name = key.substr(sourcePrefix.size());
    const std::string& label = expect<std::string>(key, value, "a string", "s");
    if (!request.files.contains(name))
        invalid("option " + key + " is for payload \"" + name + "\", which is not among the files given");
    bool printable = std::none_of(label.begin(), label.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
    if (label.empty() || label.size() > maxLabelSize || !printable)
        invalid("option " + key + " must be the path the descriptor was opened from (1 to 4096 printable characters)");
    request.files[name] = label;
}

// signature.<name>: the .minisig text; what it says is checked against the trusted keys later.
void readSignature(const std::string& key, const OptionValue& value, UpgradeRequest& request)
{
    std::string name = key.substr(signaturePrefix.size());
    const std::string& text = expect<std::string>(key, value, "a string", "s");
    if (!request.files.contains(name))
        invalid("option " + key + " is for payload \"" + name + "\", which is not among the files given");
    if (text.empty() || text.size() > maxMinisignText)
        invalid("option " + key + " must be the text of the payload's .minisig file (1 to " + std::to_string(maxMinisignText) + " bytes), got " +
                std::to_string(text.size()) + " bytes");
    request.signatures[name] = text;
}

}  // namespace

UpgradeRequest parseUpgradeRequest(const std::map<std::string, std::string>& files,
                                   const std::map<std::string, OptionValue>& options, const Config& config, SourceForm form)
{
    checkFiles(files, config, form);
    UpgradeRequest request;
    request.files = files;
    for (const auto& [key, value] : options) {
        if (key == "dry_run") {
            request.dryRun = expect<bool>(key, value, "a boolean", "b");
        } else if (key == "health_timeout_sec") {
            std::uint32_t seconds = expect<std::uint32_t>(key, value, "an unsigned integer", "u");
            if (seconds == 0)
                invalid("option health_timeout_sec must be at least 1 second, got 0");
            request.healthTimeoutSec = seconds;
        } else if (key == "allow_downgrade") {
            request.allowDowngrade = expect<bool>(key, value, "a boolean", "b");
        } else if (key.starts_with(shaPrefix)) {
            readDigest(key, value, files, request);
        } else if (key.starts_with(signaturePrefix)) {
            readSignature(key, value, request);
        } else if (key.starts_with(sourcePrefix) && form == SourceForm::Descriptors) {
            readSourceLabel(key, value, request);
        } else if (key.starts_with(sourcePrefix)) {
            invalid("option " + key + " names the file behind a descriptor and belongs to UpgradeFds; Upgrade takes the path in files");
        } else if (form == SourceForm::Descriptors) {
            invalid("unknown option \"" + key + "\"; known options are sha256.<payload>, signature.<payload>, source.<payload>, allow_downgrade, dry_run and health_timeout_sec");
        } else {
            invalid("unknown option \"" + key + "\"; known options are sha256.<payload>, signature.<payload>, allow_downgrade, dry_run and health_timeout_sec");
        }
    }
    return request;
}

}  // namespace armdock
