#!/usr/bin/env python3
"""Counts test cases from GoogleTest XML reports and meson's test log.

A meson test whose GoogleTest report is missing (it crashed, timed out or is
not a GoogleTest) counts as one case, passed or failed by its exit status.
Prints "N passed, N failed" as the last line; exits 1 when anything failed.

Usage: summarize-tests.py TESTLOG XML_DIR [TESTLOG...]
Further test logs (the ThreadSanitizer build's and the fuzz build's) are
folded into the same count, each test run one case; a test log that does
not exist (its build failed) counts as one failed case.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET


def main(testlog, xml_dir, *more_testlogs):
    passed = failed = skipped = 0
    reported = set()
    for name in sorted(os.listdir(xml_dir)):
        if not name.endswith(".xml"):
            continue
        try:
            root = ET.parse(os.path.join(xml_dir, name)).getroot()
        except ET.ParseError:
            continue
        reported.add(name[:-4])
        for case in root.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                print(f"FAILED: {root.get('name', name)} {case.get('classname')}.{case.get('name')}")
            elif case.get("result") == "skipped" or case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    lines = []  # (from the main test log?, line)
    for path in (testlog, *more_testlogs):
        try:
            with open(path) as log:
                lines.extend((path == testlog, line) for line in log)
        except OSError as error:
            failed += 1
            print(f"FAILED: no test log {path} ({error.strerror}); did its build fail?")
    for main_log, line in lines:
        entry = json.loads(line)
        binary = os.path.basename(entry.get("cmd", [""])[0])
        ok = entry.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
        # The XML reports are the main build's; a further build's run of the
        # same binary (ThreadSanitizer's) is one case of its own.
        if main_log and binary in reported:
            if not ok:  # the report exists but the binary still failed (crash after tests, leak check...)
                failed += 1
                print(f"FAILED: {entry.get('name')} exited with {entry.get('returncode')}")
            continue
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAILED: {entry.get('name')} ({entry.get('result')})")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: summarize-tests.py TESTLOG XML_DIR [TESTLOG...]")
    sys.exit(main(sys.argv[1], sys.argv[2], *sys.argv[3:]))
