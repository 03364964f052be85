#include "progress_view.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace armdock::cli {

ProgressView::ProgressView(std::FILE* out) : out_(out)
{
    const char* term = std::getenv("TERM");
    bar_ = ::isatty(::fileno(out)) == 1 && !(term != nullptr && std::strcmp(term, "dumb") == 0);
}

std::string ProgressView::plainLine(const std::string& state, unsigned percent, const std::string& message)
{
    char head[16];
    std::snprintf(head, sizeof head, "[%3u%%] ", std::min(percent, 100u));
    return head + state + (message.empty() ? "" : ": " + message);
}

int ProgressView::width() const
{
    winsize size{};
    if (::ioctl(::fileno(out_), TIOCGWINSZ, &size) == 0 && size.ws_col > 20)
        return size.ws_col;
    return 80;
}

void ProgressView::update(const std::string& state, unsigned percent, const std::string& message)
{
    if (shownAny_ && state == lastState_ && percent == lastPercent_ && message == lastMessage_)
        return;
    shownAny_ = true;
    lastState_ = state;
    lastPercent_ = percent;
    lastMessage_ = message;
    if (!bar_) {
        std::fprintf(out_, "%s\n", plainLine(state, percent, message).c_str());
        std::fflush(out_);
        return;
    }
    constexpr int barWidth = 30;
    const int filled = static_cast<int>(std::min(percent, 100u) * barWidth / 100);
    std::string line = "[" + std::string(filled, '#') + std::string(barWidth - filled, '.') + "] ";
    char pct[8];
    std::snprintf(pct, sizeof pct, "%3u%% ", std::min(percent, 100u));
    line += pct;
    line += state;
    if (!message.empty())
        line += "  " + message;
    const auto columns = static_cast<std::size_t>(width() - 1);
    if (line.size() > columns)
        line.resize(columns);
    // Back to the start of the line, erase it, draw.
    std::fprintf(out_, "\r\x1b[K%s", line.c_str());
    std::fflush(out_);
    drawn_ = true;
}

void ProgressView::close()
{
    if (bar_ && drawn_) {
        std::fputc('\n', out_);
        std::fflush(out_);
    }
    drawn_ = false;
}

}  // namespace armdock::cli
