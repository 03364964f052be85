// What the agent tells Prometheus, through node-exporter's textfile
// collector: the series (armdock_*) and their text exposition format.
// Pure: the writer (metrics_writer.hpp) gathers a snapshot and writes it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "vocabulary.hpp"

namespace armdock {

struct MetricsSnapshot {
    std::string engineVersion;  // "" when unknown
    TransactionResult lastResult = TransactionResult::None;
    double lastResultUnixSeconds = 0;  // 0: none since the agent started
    // Per result: transactions since the agent started, and how long the last one took.
    std::map<TransactionResult, std::uint64_t> transactions;
    std::map<TransactionResult, double> lastDurationSeconds;
    std::uint32_t engineRestarts = 0;  // by the monitor, since the agent started
    bool healthy = true;
    std::size_t backupSets = 0;
    bool busy = false;  // a transaction runs
};

// The exposition text: # HELP and # TYPE for each family, label values
// escaped, every result named with 0 or 1 for armdock_last_result.
std::string formatMetrics(const MetricsSnapshot& snapshot);

}  // namespace armdock
