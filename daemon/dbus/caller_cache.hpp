// Credentials of D-Bus callers, remembered by unique bus name (":1.42").
// Asking sd-bus for them costs a blocking GetConnectionCredentials round trip
// to dbus-daemon and a read of /proc/PID/status, on the event loop, for every
// method call. A connection's uid is fixed when it connects and unique names
// are never reused on a bus, so an entry cannot describe another caller; the
// groups are those read at the connection's first call. Bounded: when full,
// the entry remembered first goes.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>

namespace armdock {

template <typename Credentials>
class CallerCache {
public:
    explicit CallerCache(std::size_t capacity = 256) : capacity_(capacity == 0 ? 1 : capacity) {}

    // nullptr when not remembered (or `sender` is empty: a peer-to-peer call has no name).
    const Credentials* find(const std::string& sender) const
    {
        if (sender.empty())
            return nullptr;
        auto it = entries_.find(sender);
        return it == entries_.end() ? nullptr : &it->second;
    }

    void remember(const std::string& sender, Credentials credentials)
    {
        if (sender.empty())
            return;
        auto [it, inserted] = entries_.insert_or_assign(sender, std::move(credentials));
        if (!inserted)
            return;
        order_.push_back(sender);
        if (order_.size() > capacity_) {
            entries_.erase(order_.front());
            order_.pop_front();
        }
    }

    std::size_t size() const { return entries_.size(); }

private:
    std::size_t capacity_;
    std::unordered_map<std::string, Credentials> entries_;
    std::deque<std::string> order_;
};

}  // namespace armdock
