#include "core/metrics.hpp"

#include <cstdio>

namespace armdock {

namespace {

// Label values escape backslash, double quote and newline (the exposition format's rule).
std::string labelValue(const std::string& text)
{
    std::string out;
    for (char c : text) {
        if (c == '\\' || c == '"')
            out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

std::string number(double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

void family(std::string& out, const char* name, const char* type, const char* help)
{
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string formatMetrics(const MetricsSnapshot& s)
{
    std::string out;
    family(out, "armdock_engine_info", "gauge", "The engine version installed (from its /version), as a label.");
    out += "armdock_engine_info{version=\"" + labelValue(s.engineVersion) + "\"} 1\n";

    family(out, "armdock_last_result", "gauge", "1 for the result of the last transaction, 0 for the others.");
    for (const auto& w : Words<TransactionResult>::table)
        out += std::string("armdock_last_result{result=\"") + std::string(w.second) + "\"} " + (w.first == s.lastResult ? "1" : "0") + "\n";

    family(out, "armdock_last_result_timestamp_seconds", "gauge", "When the last transaction ended (Unix time; 0: none since the agent started).");
    out += "armdock_last_result_timestamp_seconds " + number(s.lastResultUnixSeconds) + "\n";

    family(out, "armdock_transactions_total", "counter", "Transactions that ended, by result, since the agent started.");
    for (const auto& w : Words<TransactionResult>::table) {
        if (w.first == TransactionResult::None)
            continue;
        const auto count = s.transactions.find(w.first);
        out += std::string("armdock_transactions_total{result=\"") + std::string(w.second) + "\"} " +
               std::to_string(count == s.transactions.end() ? 0 : count->second) + "\n";
    }

    family(out, "armdock_transaction_duration_seconds", "gauge", "How long the last transaction of each result took (results seen since the agent started).");
    for (const auto& [result, seconds] : s.lastDurationSeconds)
        out += std::string("armdock_transaction_duration_seconds{result=\"") + std::string(str(result)) + "\"} " + number(seconds) + "\n";

    family(out, "armdock_engine_restarts_total", "counter", "Engine restarts by the agent's monitor since the agent started.");
    out += "armdock_engine_restarts_total " + std::to_string(s.engineRestarts) + "\n";

    family(out, "armdock_healthy", "gauge", "1 when the engine passed its last check between transactions.");
    out += std::string("armdock_healthy ") + (s.healthy ? "1" : "0") + "\n";

    family(out, "armdock_backup_sets", "gauge", "Backup sets kept in the state folder.");
    out += "armdock_backup_sets " + std::to_string(s.backupSets) + "\n";

    family(out, "armdock_busy", "gauge", "1 while a transaction runs.");
    out += std::string("armdock_busy ") + (s.busy ? "1" : "0") + "\n";
    return out;
}

}  // namespace armdock
