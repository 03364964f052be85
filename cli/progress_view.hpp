// How armdockctl shows a transaction's progress: on a terminal, one bar
// redrawn in place ("[#######.......]  45% staging  copying docker"); on
// anything else (a log, CI), one plain line per change:
//   [ 45%] staging: copying docker
#pragma once

#include <cstdio>
#include <string>

namespace armdock::cli {

class ProgressView {
public:
    // A bar when `out` is a terminal (and TERM is not "dumb"), lines otherwise.
    explicit ProgressView(std::FILE* out);
    ProgressView(std::FILE* out, bool bar) : out_(out), bar_(bar) {}
    ~ProgressView() { close(); }

    bool bar() const { return bar_; }
    // Shows a change; repeats of the last shown values are skipped.
    void update(const std::string& state, unsigned percent, const std::string& message);
    // Ends the bar's line (so that what follows starts on a fresh line).
    void close();

    // "[ 45%] staging: copying docker" (no newline).
    static std::string plainLine(const std::string& state, unsigned percent, const std::string& message);

private:
    int width() const;

    std::FILE* out_;
    bool bar_;
    bool drawn_ = false;
    bool shownAny_ = false;
    std::string lastState_;
    unsigned lastPercent_ = 0;
    std::string lastMessage_;
};

}  // namespace armdock::cli
