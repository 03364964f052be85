#!/usr/bin/env python3
"""Prints the executables (paths relative to BUILD_DIR, as ninja names them)
of the tests in the given meson suites, so a build can make only those."""
import json
import os
import subprocess
import sys

build_dir, suites = sys.argv[1], set(sys.argv[2:])
tests = json.loads(subprocess.run(["meson", "introspect", "--tests", build_dir],
                                  check=True, capture_output=True, text=True).stdout)
root = os.path.realpath(build_dir)
targets = set()
for test in tests:
    # meson names suites "project:suite".
    if suites & {s.split(":")[-1] for s in test["suite"]}:
        targets.add(os.path.relpath(os.path.realpath(test["cmd"][0]), root))
if not targets:
    sys.exit(f"no tests in suites {sorted(suites)} under {build_dir}")
print(" ".join(sorted(targets)))
