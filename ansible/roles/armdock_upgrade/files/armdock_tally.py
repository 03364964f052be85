#!/usr/bin/python3
"""Counts one rollout's results on the controller and says whether it goes on.

Ansible schedules the batches; this only reads <results>/<host>.json of the
current run at the start and at the end of each batch. When more hosts
rolled back, failed or were unreachable than --max-failures allows, it writes
a "not-run" result for every host of the play that has none from this run;
then, or once every host has a result (the last batch is done), or with
--final, it writes <results>/summary.json with the counts and the reason, and
prints the reason on one line. Exit status: 0 the rollout goes on (or
ended), 10 it must stop.
"""
import argparse
import datetime
import json
import os
import sys

FAILURES = ("rolled-back", "failed", "unreachable")
RESULTS = ("success", "rolled-back", "failed", "rejected", "busy", "unreachable", "skipped", "not-run")
STOP = 10


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json(path, value):
    """Atomically: a reader never sees half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(value, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(tmp, path)


def read_result(folder, host, run):
    try:
        with open(os.path.join(folder, host + ".json"), encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    return result if result.get("run") == run else None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, help="the results folder")
    p.add_argument("--run", required=True, help="this rollout's id, as written in each result")
    p.add_argument("--hosts", required=True, help="every host of the play, comma-separated, in inventory order")
    p.add_argument("--max-failures", type=int, default=0)
    p.add_argument("--final", action="store_true", help="the play is over: write the summary, hosts without a result not-run")
    args = p.parse_args()

    hosts = [h for h in args.hosts.split(",") if h]
    results = {h: read_result(args.results, h, args.run) for h in hosts}
    failed = [h for h, r in results.items() if r and r.get("result") in FAILURES]
    stop = len(failed) > args.max_failures
    if not stop and not args.final and not all(results.values()):
        print("going on: %d of %d host(s) done, %d failure(s) of %d allowed"
              % (sum(1 for r in results.values() if r), len(hosts), len(failed), args.max_failures))
        return 0

    for host, result in results.items():
        if result is None:
            results[host] = {"host": host, "run": args.run, "result": "not-run", "exit_code": None, "transaction": "", "upgrade_seconds": None,
                             "version_before": "", "version_after": "",
                             "message": "not started: the rollout stopped before this host's batch" if stop
                             else "not started: the play did not reach this host",
                             "started": "", "finished": ""}
            write_json(os.path.join(args.results, host + ".json"), results[host])

    counts = {name: 0 for name in RESULTS}
    for result in results.values():
        counts[result["result"]] = counts.get(result["result"], 0) + 1
    if stop:
        first = failed[0]
        reason = ("stopped: %d host(s) rolled back, failed or were unreachable, more than armdock_max_failures = %d "
                  "(first: %s, %s: %s); %d host(s) not run"
                  % (len(failed), args.max_failures, first, results[first]["result"],
                     results[first].get("message", ""), counts["not-run"]))
    else:
        reason = "finished: %d host(s), %d success, %d skipped, %d failure(s) of %d allowed" % (
            len(hosts), counts["success"], counts["skipped"], len(failed), args.max_failures)
    write_json(os.path.join(args.results, "summary.json"), {
        "run": args.run, "hosts": len(hosts), "counts": counts, "failures": failed,
        "max_failures": args.max_failures, "stopped": stop, "reason": reason, "finished": now()})
    print(reason)
    return STOP if stop else 0


if __name__ == "__main__":
    sys.exit(main())
