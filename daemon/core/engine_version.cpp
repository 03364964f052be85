#include "engine_version.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <regex>
#include <system_error>
#include <vector>

#include "child_process.hpp"
#include "durable_fs.hpp"
#include "errors.hpp"

namespace armdock {

namespace {

constexpr std::size_t outputLimit = 64 * 1024;
constexpr std::size_t chunkSize = 1 << 20;

[[noreturn]] void cannotRun(const std::string& command, const std::string& why)
{
    throw AgentError(ErrorKind::PayloadRejected, "cannot learn a payload's version: " + command + " " + why);
}

std::string describeCommand(const std::filesystem::path& binary, const std::vector<std::string>& args)
{
    std::string text = binary.string();
    for (const auto& arg : args)
        text += " " + arg;
    return text;
}

std::string firstLine(const std::string& output)
{
    std::string line = output.substr(0, output.find('\n'));
    return line.size() > 200 ? line.substr(0, 200) + "..." : line;
}

std::string exitProblem(const ChildOutcome& child)
{
    if (child.end == ChildOutcome::End::Signalled)
        return "was killed by signal " + std::to_string(child.code) + " (" + strsignal(child.code) + ")";
    if (child.code != 0)
        return "exited with status " + std::to_string(child.code) + (child.output.empty() ? std::string() : ": " + firstLine(child.output));
    return {};
}

}  // namespace

std::optional<std::string> parseProgramVersion(std::string_view output)
{
    static const std::regex afterWord(R"(version\s+v?([0-9]+\.[0-9]+[0-9A-Za-z.+~_-]*))", std::regex::icase);
    // containerd names no "version": "containerd github.com/containerd/containerd 1.6.20~ds1 <revision>".
    static const std::regex bareToken(R"((?:^|\s)v?([0-9]+\.[0-9]+[0-9A-Za-z.+~_-]*))");
    std::match_results<std::string_view::const_iterator> match;
    if (!std::regex_search(output.begin(), output.end(), match, afterWord) && !std::regex_search(output.begin(), output.end(), match, bareToken))
        return std::nullopt;
    std::string version = match[1].str();
    // "1.10.2," or "1.10.2." at the end of a sentence: the punctuation is not part of it.
    while (!version.empty() && (version.back() == '.' || version.back() == '-'))
        version.pop_back();
    return version;
}

std::string learnEngineVersion(const std::filesystem::path& binary, const std::vector<std::string>& args,
                               std::chrono::milliseconds timeout)
{
    const std::string command = describeCommand(binary, args);
    std::vector<std::string> argv{binary.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    ChildOutcome child;
    try {
        child = runChild(argv, timeout, outputLimit);
    } catch (const std::system_error& e) {
        cannotRun(command, std::string("cannot run: ") + std::strerror(e.code().value()));
    }
    if (child.end == ChildOutcome::End::TimedOut)
        cannotRun(command, std::string(child.outputClosed ? "closed its output but did not exit" : "did not finish") + " within " +
                               std::to_string(timeout.count()) + " ms; it was killed");
    if (const std::string problem = exitProblem(child); !problem.empty())
        cannotRun(command, problem);
    const auto version = parseProgramVersion(child.output);
    if (!version)
        cannotRun(command, "printed no version" + (child.output.empty() ? std::string() : ": \"" + firstLine(child.output) + "\""));
    return *version;
}

bool fileContainsText(const std::filesystem::path& file, std::string_view text)
{
    if (text.empty())
        return true;
    std::boyer_moore_horspool_searcher searcher(text.begin(), text.end());
    // The last text.size() - 1 bytes of one chunk are kept before the next, so
    // a match across the boundary is found.
    std::string window;
    return readInChunks(file, chunkSize, [&](const char* data, std::size_t size) {
        window.append(data, size);
        if (std::search(window.begin(), window.end(), searcher) != window.end())
            return false;  // found: stop reading
        window.erase(0, window.size() - std::min(window.size(), text.size() - 1));
        return true;
    });
}

std::string releaseLine(std::string_view version)
{
    const auto digitsFrom = [&](std::size_t at) {
        std::size_t end = at;
        while (end < version.size() && std::isdigit(static_cast<unsigned char>(version[end])))
            ++end;
        return end;
    };
    const std::size_t major = digitsFrom(0);
    if (major == 0 || major >= version.size() || version[major] != '.')
        return "";
    const std::size_t minor = digitsFrom(major + 1);
    if (minor == major + 1)
        return "";
    return std::string(version.substr(0, minor));
}

}  // namespace armdock
