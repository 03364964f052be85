// Shared pieces of the benchmarks: statistics, a 1 ms /_ping client, the
// summary rows that bench/run.sh prints at the end, and small helpers.
// Not tests: nothing here asserts; every program prints what it measured.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <spawn.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace armdock::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, the same clock in every thread
using Ms = std::chrono::duration<double, std::milli>;

inline double msBetween(Clock::time_point a, Clock::time_point b) { return Ms(b - a).count(); }

// Repetitions and durations, overridable from the environment.
inline int envInt(const char* name, int fallback)
{
    const char* v = std::getenv(name);
    return v && *v ? std::atoi(v) : fallback;
}

// ---- statistics -------------------------------------------------------------

inline double percentile(std::vector<double> v, double p)
{
    if (v.empty())
        return NAN;
    std::sort(v.begin(), v.end());
    // nearest rank
    std::size_t rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    rank = std::clamp<std::size_t>(rank, 1, v.size());
    return v[rank - 1];
}

inline double median(std::vector<double> v)
{
    if (v.empty())
        return NAN;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

inline std::string formatted(double v, int decimals = 1)
{
    if (std::isnan(v))
        return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

inline std::string join(const std::vector<double>& v, int decimals = 1)
{
    std::string s;
    for (double x : v)
        s += (s.empty() ? "" : " ") + formatted(x, decimals);
    return s;
}

// ---- the summary ------------------------------------------------------------

// One row of the table bench/run.sh prints at the end. Written to the file
// named by ARMDOCK_BENCH_SUMMARY (tab-separated), and always to stdout.
struct SummaryRow {
    std::string benchmark;  // "1 downtime"
    std::string metric;     // "agent vs manual (median ms)"
    std::string agent;
    std::string reference;  // "manual 165.0"
    std::string ratio;      // agent / reference
    std::string goal;
    bool met = false;
};

// `verdict`, when given, is printed instead of met / MISSED: a measurement without a goal.
inline void addSummary(const SummaryRow& r, const std::string& verdict = "")
{
    const std::string line = r.benchmark + "\t" + r.metric + "\t" + r.agent + "\t" + r.reference + "\t" + r.ratio + "\t" +
                             r.goal + "\t" + (!verdict.empty() ? verdict : r.met ? "met" : "MISSED");
    std::cout << "SUMMARY\t" << line << "\n";
    if (const char* file = std::getenv("ARMDOCK_BENCH_SUMMARY"); file && *file) {
        std::ofstream out(file, std::ios::app);
        out << line << "\n";
    }
}

inline std::string ratio(double a, double b) { return (b > 0 && !std::isnan(a) && !std::isnan(b)) ? formatted(a / b, 2) : "n/a"; }

// ---- processes --------------------------------------------------------------

// Runs argv (absolute path) with the given environment and waits; returns the exit code.
inline int runWait(const std::vector<std::string>& argv, const std::vector<std::string>& env = {})
{
    std::vector<char*> a, e;
    for (const auto& s : argv)
        a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    for (const auto& s : env)
        e.push_back(const_cast<char*>(s.c_str()));
    e.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, a[0], &fa, nullptr, a.data(), env.empty() ? environ : e.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---- /proc ------------------------------------------------------------------

// A field of /proc/PID/status in kB ("RssAnon", "VmRSS"); -1 when absent.
inline long procStatusKb(pid_t pid, const std::string& field)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field + ":", 0) == 0)
            return std::atol(line.c_str() + field.size() + 1);
    return -1;
}

inline long procPssKb(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("Pss:", 0) == 0)
            return std::atol(line.c_str() + 4);
    return -1;
}

// Context switches (voluntary + involuntary) summed over every thread: each
// wake-up of a sleeping thread ends in one.
inline long procContextSwitches(pid_t pid)
{
    long total = 0;
    std::error_code ec;
    for (const auto& t : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        std::ifstream in(t.path() / "status");
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
                total += std::atol(line.c_str() + line.find(':') + 1);
    }
    return total;
}

inline int procThreads(pid_t pid)
{
    std::error_code ec;
    int n = 0;
    for ([[maybe_unused]] const auto& t : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec))
        ++n;
    return n;
}

// utime + stime in milliseconds.
inline double procCpuMs(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(in)), {});
    auto close = all.rfind(')');
    if (close == std::string::npos)
        return NAN;
    std::istringstream rest(all.substr(close + 2));
    std::string f;
    std::vector<std::string> fields;
    while (rest >> f)
        fields.push_back(f);
    // fields[0] is field 3 (state); utime is field 14, stime 15.
    if (fields.size() < 13)
        return NAN;
    const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return (std::atof(fields[11].c_str()) + std::atof(fields[12].c_str())) * 1000.0 / tick;
}

// ---- one GET /_ping ---------------------------------------------------------

// True when the socket answers "HTTP/1.x 200 ..." with body "OK" within timeout.
inline bool pingOnce(const std::string& socketPath, std::chrono::milliseconds timeout)
{
    const auto deadline = Clock::now() + timeout;
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socketPath.c_str(), sizeof addr.sun_path - 1);
    auto waitFor = [&](short events) {
        for (;;) {
            int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
            if (left <= 0)
                return false;
            pollfd p{fd, events, 0};
            int r = ::poll(&p, 1, left);
            if (r > 0)
                return true;
            if (r < 0 && errno != EINTR)
                return false;
        }
    };
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN)
            return false;
        if (!waitFor(POLLOUT))
            return false;
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
            return false;
    }
    static const char request[] = "GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    std::size_t sent = 0;
    while (sent < sizeof request - 1) {
        ssize_t n = ::send(fd, request + sent, sizeof request - 1 - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!waitFor(POLLOUT))
                return false;
            continue;
        }
        return false;
    }
    std::string reply;
    char buf[1024];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            reply.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0)
            break;
        if (errno == EAGAIN || errno == EINTR) {
            if (!waitFor(POLLIN))
                return false;
            continue;
        }
        return false;
    }
    if (!reply.starts_with("HTTP/1.") || reply.size() < 12 || reply.compare(9, 3, "200") != 0)
        return false;
    auto body = reply.find("\r\n\r\n");
    return body != std::string::npos && reply.compare(body + 4, std::string::npos, "OK") == 0;
}

// ---- the client that pings every millisecond -------------------------------

// A thread that sends GET /_ping every millisecond (the next one starts 1 ms
// after the previous started, or at once when a ping took longer) and records
// when each started and ended and whether it answered OK.
class Pinger {
public:
    struct Sample {
        Clock::time_point start, end;
        bool ok;
    };

    explicit Pinger(std::string socketPath) : socket_(std::move(socketPath))
    {
        samples_.reserve(200000);
        thread_ = std::thread([this] { loop(); });
    }
    ~Pinger() { stop(); }

    void stop()
    {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
    }

    // Only after stop().
    const std::vector<Sample>& samples() const { return samples_; }

    struct Outage {
        double downtimeMs = 0;  // first failed ping's start -> next good ping's end (longest such span)
        Clock::time_point firstFailed{}, nextGood{};
        int outages = 0;  // failure streaks seen
        std::size_t pings = 0;
    };

    // The downtime as a client sees it: the longest time between a failed
    // ping (its start) and the next good one (its answer).
    Outage outage() const
    {
        Outage o;
        o.pings = samples_.size();
        for (std::size_t i = 0; i < samples_.size(); ++i) {
            if (samples_[i].ok || (i > 0 && !samples_[i - 1].ok))
                continue;  // only the first failure of a streak
            ++o.outages;
            std::size_t j = i;
            while (j < samples_.size() && !samples_[j].ok)
                ++j;
            if (j == samples_.size())
                continue;  // never came back while we watched
            double d = msBetween(samples_[i].start, samples_[j].end);
            if (d > o.downtimeMs) {
                o.downtimeMs = d;
                o.firstFailed = samples_[i].start;
                o.nextGood = samples_[j].end;
            }
        }
        return o;
    }

    struct Stall {
        double longestMs = 0;  // the longest span between two good answers
        Clock::time_point from{}, to{};  // the answer before it, and the one that ended it
        long failed = 0;       // pings that got no good answer
    };

    // What a client waits: the longest time between one good answer and the
    // next, whether the pings between failed or one was slow (a connection
    // waiting in the socket's backlog while the engine restarts).
    Stall stall() const
    {
        Stall st;
        std::optional<Clock::time_point> lastGood;
        for (const auto& s : samples_) {
            if (!s.ok) {
                ++st.failed;
                continue;
            }
            if (lastGood && msBetween(*lastGood, s.end) > st.longestMs) {
                st.longestMs = msBetween(*lastGood, s.end);
                st.from = *lastGood;
                st.to = s.end;
            }
            lastGood = s.end;
        }
        return st;
    }

private:
    void loop()
    {
        auto next = Clock::now();
        while (!stop_) {
            Sample s;
            s.start = Clock::now();
            s.ok = pingOnce(socket_, std::chrono::milliseconds(5000));
            s.end = Clock::now();
            samples_.push_back(s);
            next = s.start + std::chrono::milliseconds(1);
            if (next > Clock::now())
                std::this_thread::sleep_until(next);
        }
    }

    std::string socket_;
    std::vector<Sample> samples_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

inline std::string machineDescription()
{
    std::string cpu = "unknown CPU";
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0) {
            cpu = line.substr(line.find(':') + 2);
            break;
        }
    return cpu + ", " + std::to_string(std::thread::hardware_concurrency()) + " CPUs";
}

}  // namespace armdock::bench
