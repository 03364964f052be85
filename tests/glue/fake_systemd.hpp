// A stand-in for org.freedesktop.systemd1 on a private bus: the Manager's
// Subscribe, LoadUnit, StopUnit/StartUnit/RestartUnit (each returns a job
// path and then emits JobRemoved with the result the test chose), KillUnit
// (recorded; it can end a unit's pending job), and unit objects with
// ActiveState and MainPID. Uses sdbus-c++ 1.2's registration API.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dbus/sdbus_compat.hpp"
#include "sandbox.hpp"

namespace armdock::test {

class FakeSystemd {
public:
    struct Job {
        std::string result = "done";      // the JobRemoved result
        bool removedBeforeReply = false;  // emit JobRemoved before the method reply
        bool neverRemoved = false;        // never emit JobRemoved
        bool removedOnKill = false;       // with neverRemoved: KillUnit of the unit emits it
    };

    static constexpr const char* manager = "org.freedesktop.systemd1.Manager";

    explicit FakeSystemd(sdbus::IConnection& connection) : connection_(connection)
    {
        object_ = compat::makeObject(connection, "/org/freedesktop/systemd1");
        compat::ObjectVTable vtable(*object_);
        vtable.onInterface(manager).method("Subscribe", [this] { ++subscribes; });
        for (const char* method : {"StopUnit", "StartUnit", "RestartUnit"})
            registerJobMethod(vtable, method);
        vtable.method("KillUnit", [this](const std::string& unit, const std::string& whom, std::int32_t signal) {
            calls.push_back("KillUnit " + unit + " " + whom + " " + std::to_string(signal));
            requireUnit(unit);
            auto pending = pendingJobs_.find(unit);
            if (pending == pendingJobs_.end())
                return;
            const PendingJob job = pending->second;
            pendingJobs_.erase(pending);
            emitJobRemoved(job.id, job.path, unit, job.result);
        });
        vtable.method("LoadUnit", [this](const std::string& unit) {
            return sdbus::ObjectPath(pathOf(requireUnit(unit)));
        });
        vtable.signal<std::uint32_t, sdbus::ObjectPath, std::string, std::string>("JobRemoved");
        vtable.finish();
        connection.requestName(compat::ServiceName{"org.freedesktop.systemd1"});
    }

    void addUnit(const std::string& unit, std::string activeState, std::uint32_t mainPid)
    {
        auto& state = units_[unit];
        state.activeState = std::move(activeState);
        state.mainPid = mainPid;
        state.object = compat::makeObject(connection_, pathOf(unit));
        compat::ObjectVTable vtable(*state.object);
        vtable.onInterface("org.freedesktop.systemd1.Unit").property("ActiveState", [this, unit] {
            return units_.at(unit).activeState;
        });
        vtable.onInterface("org.freedesktop.systemd1.Service").property("MainPID", [this, unit] {
            return units_.at(unit).mainPid;
        });
        vtable.finish();
    }

    std::map<std::string, Job> jobs;  // by unit; a unit not listed gets "done"
    std::vector<std::string> calls;   // "StopUnit docker.service replace", "KillUnit docker.service all 9"
    int subscribes = 0;

private:
    struct PendingJob {
        std::uint32_t id = 0;
        sdbus::ObjectPath path;
        std::string result;
    };

    struct Unit {
        std::string activeState;
        std::uint32_t mainPid = 0;
        std::unique_ptr<sdbus::IObject> object;
    };

    static std::string pathOf(const std::string& unit) { return test::systemdUnitPath(unit); }

    const std::string& requireUnit(const std::string& unit)
    {
        if (!units_.count(unit))
            throw compat::makeError("org.freedesktop.systemd1.NoSuchUnit", "Unit " + unit + " not found.");
        return unit;
    }

    void registerJobMethod(compat::ObjectVTable& vtable, const std::string& method)
    {
        vtable.method(method,
            [this, method](sdbus::Result<sdbus::ObjectPath>&& result, const std::string& unit, const std::string& mode) {
                startJob(result, method, unit, mode);
            });
    }

    // Queues the reply and JobRemoved in the order the test asked for.
    void startJob(const sdbus::Result<sdbus::ObjectPath>& result, const std::string& method, const std::string& unit,
                  const std::string& mode)
    {
        calls.push_back(method + " " + unit + " " + mode);
        if (!units_.count(unit)) {
            result.returnError(compat::makeError("org.freedesktop.systemd1.NoSuchUnit", "Unit " + unit + " not found."));
            return;
        }
        const std::uint32_t id = ++lastJob_;
        const sdbus::ObjectPath job("/org/freedesktop/systemd1/job/" + std::to_string(id));
        const Job behaviour = jobs.count(unit) ? jobs.at(unit) : Job{};
        if (behaviour.removedBeforeReply && !behaviour.neverRemoved)
            emitJobRemoved(id, job, unit, behaviour.result);
        result.returnResults(job);
        if (!behaviour.removedBeforeReply && !behaviour.neverRemoved)
            emitJobRemoved(id, job, unit, behaviour.result);
        if (behaviour.neverRemoved && behaviour.removedOnKill)
            pendingJobs_[unit] = PendingJob{id, job, behaviour.result};
    }

    void emitJobRemoved(std::uint32_t id, const sdbus::ObjectPath& job, const std::string& unit, const std::string& result)
    {
        object_->emitSignal("JobRemoved").onInterface(manager).withArguments(id, job, unit, result);
    }

    sdbus::IConnection& connection_;
    std::unique_ptr<sdbus::IObject> object_;
    std::map<std::string, Unit> units_;
    std::map<std::string, PendingJob> pendingJobs_;  // by unit: jobs that KillUnit ends
    std::uint32_t lastJob_ = 0;
};

}  // namespace armdock::test
