#!/bin/sh
# Builds vmlet and runs the whole test suite (unit and end-to-end tests).
# Tests that cannot run on this machine exit 77 and are reported as skipped.
# Extra arguments go to `meson test` (e.g. a test name, or --suite unit).
set -eu
cd "$(dirname "$0")/.."
scripts/build.sh
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
# One closing line that any CI reads, from meson's machine-readable log.
python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0}
with open(sys.argv[1]) as log:
    for line in log:
        result = json.loads(line).get("result", "")
        if result in ("OK", "EXPECTEDFAIL"):
            counts["OK"] += 1
        elif result == "SKIP":
            counts["SKIP"] += 1
        else:
            counts["FAIL"] += 1
print(f"{counts['OK']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
PY
exit "$status"
