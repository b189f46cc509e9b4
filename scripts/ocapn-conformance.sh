#!/usr/bin/env bash
# Runs the public OCapN test suite against pola's test peer over
# tcp-testing-only and prints the pass/fail count.
#
#   scripts/ocapn-conformance.sh SUITE_DIR [SUITE_DIR...] [extra test_runner.py args...]
#
# Each SUITE_DIR is a checkout of github.com/ocapn/ocapn-test-suite (CI cannot
# fetch it; run this by hand), e.g. its `main` branch and its
# `remove-op-deliver-only` branch: every one runs against the same test peer
# (one process, one invocation), and the script fails if any test of any of
# them fails. Python >= 3.10 with `cryptography` and `stem` is needed: set
# OCAPN_PYTHON to such an interpreter, or the script makes a venv in the first
# SUITE_DIR/.venv and pip-installs them there.
# Environment: PORT (default: a free port), CARGO_TARGET_DIR (as usual),
# POLA_BIN (skip the build and use this binary), POLA_PEER_TRACE=1 (the peer
# logs every message it sends and every session event to its stderr).
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1/test_runner.py" ]]; then
    echo "usage: $0 SUITE_DIR [SUITE_DIR...] [test_runner.py args...]  (each SUITE_DIR must hold test_runner.py)" >&2
    exit 2
fi
suites=()
while [[ $# -gt 0 && -f "$1/test_runner.py" ]]; do
    suites+=("$(cd "$1" && pwd)")
    shift
done
suite_dir=${suites[0]}
repo=$(cd "$(dirname "$0")/.." && pwd)

# 1. Python with the suite's dependencies.
python=${OCAPN_PYTHON:-}
if [[ -z "$python" ]]; then
    if ! "$suite_dir/.venv/bin/python" -c 'import cryptography, stem' 2>/dev/null; then
        echo "== making $suite_dir/.venv (cryptography, stem)" >&2
        python3 -m venv "$suite_dir/.venv"
        "$suite_dir/.venv/bin/pip" install -q cryptography stem
    fi
    python="$suite_dir/.venv/bin/python"
fi

# 2. Build pola (or, until `pola ocapn test-peer` is wired into the binary,
#    the pola-peer example that runs the very same module).
if [[ -z "${POLA_BIN:-}" ]]; then
    echo "== building pola" >&2
    target=${CARGO_TARGET_DIR:-$repo/target}
    (cd "$repo" && cargo build -q -p pola-cli --bin pola)
    POLA_BIN="$target/debug/pola"
    if ! "$POLA_BIN" ocapn test-peer --help >/dev/null 2>&1; then
        echo "== this pola has no 'ocapn test-peer'; using the pola-peer example" >&2
        (cd "$repo" && cargo build -q -p pola-peer --example pola-ocapn)
        POLA_BIN="$target/debug/examples/pola-ocapn"
    fi
fi

# 3. Start the test peer and read the locator it prints first.
port=${PORT:-$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
workdir=$(mktemp -d)
peer_pid=""
cleanup() {
    if [[ -n "$peer_pid" ]]; then
        kill "$peer_pid" 2>/dev/null || true
        wait "$peer_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT
mkfifo "$workdir/out"
"$POLA_BIN" ocapn test-peer --port "$port" >"$workdir/out" 2>"$workdir/peer.log" &
peer_pid=$!
exec 3<"$workdir/out"
locator=""
if ! read -r -t 30 locator <&3 || [[ "$locator" != ocapn://* ]]; then
    echo "test peer did not print a locator (got: '$locator'); its log:" >&2
    cat "$workdir/peer.log" >&2
    exit 1
fi
# Keep draining the peer's stdout so it never blocks on a full pipe.
cat <&3 >/dev/null &
echo "== test peer at $locator (pid $peer_pid)" >&2

# 4. Run each suite against the same peer.
status=0
summary=()
for suite in "${suites[@]}"; do
    branch=$(git -C "$suite" rev-parse --abbrev-ref HEAD 2>/dev/null || echo "?")
    echo "== suite $suite ($branch)" >&2
    set +e
    (cd "$suite" && "$python" test_runner.py "$locator" -v "$@") 2>&1 | tee "$workdir/suite.log"
    one=${PIPESTATUS[0]}
    set -e
    [[ $one -eq 0 ]] || status=$one

    # Summarise: unittest prints "Ran N tests" and "FAILED (failures=a, errors=b)".
    ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\}.*/\1/p' "$workdir/suite.log" | tail -1)
    failures=$(sed -n 's/.*failures=\([0-9]*\).*/\1/p' "$workdir/suite.log" | tail -1)
    errors=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$workdir/suite.log" | tail -1)
    ran=${ran:-0}; failures=${failures:-0}; errors=${errors:-0}
    passed=$((ran - failures - errors))
    summary+=("== OCapN test suite ($branch): $passed/$ran pass ($failures failures, $errors errors)")
done
printf '%s\n' "${summary[@]}"
if [[ -s "$workdir/peer.log" ]]; then
    cp "$workdir/peer.log" "${TMPDIR:-/tmp}/ocapn-test-peer.log"
    echo "== test peer log (last 20 lines; all of it in ${TMPDIR:-/tmp}/ocapn-test-peer.log):" >&2
    tail -20 "$workdir/peer.log" >&2
fi
exit "$status"
