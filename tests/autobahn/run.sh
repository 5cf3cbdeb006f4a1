#!/usr/bin/env bash
# Autobahn|Testsuite against asgi-sansio's asyncio driver serving a plain echo app.
#
#   bash tests/autobahn/run.sh            # cases 1-10, 12 and 13 (see spec.json)
#   bash tests/autobahn/run.sh --quick    # 1-10, and 12/13 only with messages up to 4 KiB
#   AUTOBAHN_CASES='1.*,5.*' bash tests/autobahn/run.sh
#
# 1. a Python 2.7 virtualenv with wstest (autobahntestsuite is Python 2 only), built once under
#    $AUTOBAHN_ENV and reused while requirements-py2.txt is unchanged;
# 2. tests/autobahn/echo_app.py on a free port of 127.0.0.1, with this checkout's asgi_sansio;
# 3. wstest -m fuzzingclient, reports under $AUTOBAHN_REPORTS (HTML index.html and JSON);
# 4. summarize.py: counts by behaviour, every failing case; exit 1 if any case FAILED.
#
# Environment: PYTHON (runs the server; default: python, else python3), PYTHON2 (default:
# pyenv's 2.7.18), AUTOBAHN_ENV (default: ~/.cache/asgi-sansio/autobahn), AUTOBAHN_REPORTS
# (default: build/autobahn), AUTOBAHN_CASES (comma-separated case patterns), AUTOBAHN_TIMEOUT
# (seconds for wstest, default 5400).
set -euo pipefail

QUICK=0
for arg in "$@"; do
    case $arg in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) printf 'autobahn: unknown argument %s (see --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

PYTHON=${PYTHON:-$(command -v python || command -v python3)}
PYTHON2=${PYTHON2:-${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python}
ENV_DIR=${AUTOBAHN_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/asgi-sansio/autobahn}
REPORTS=${AUTOBAHN_REPORTS:-$ROOT/build/autobahn}
TIMEOUT=${AUTOBAHN_TIMEOUT:-5400}
if ((QUICK)) && [[ -z ${AUTOBAHN_CASES:-} ]]; then
    # 12.X.Y / 13.X.Y: Y = 1..5 are the messages of 16 B to 4 KiB (case12_x_x.py's MSG_SIZES),
    # X the data sets (12) and the permessage-deflate parameters (13).
    AUTOBAHN_CASES=$(
        printf '%s.*,' 1 2 3 4 5 6 7 8 9 10
        for x in 1 2 3 4 5; do for y in 1 2 3 4 5; do printf '12.%s.%s,' "$x" "$y"; done; done
        for x in 1 2 3 4 5 6 7; do for y in 1 2 3 4 5; do printf '13.%s.%s,' "$x" "$y"; done; done
    )
fi

log() { printf 'autobahn: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

[[ -x $PYTHON2 ]] || die "no Python 2.7 at $PYTHON2 (set PYTHON2)"
"$PYTHON" -c 'import h11, wsproto' 2>/dev/null ||
    die "$PYTHON lacks asgi-sansio's dependencies: pip install -e . first (or set PYTHON)"

# --- 1. wstest in a Python 2.7 virtualenv ---------------------------------------------------------
start=$SECONDS
stamp=$(cat "$HERE/requirements-py2.txt" "$PYTHON2" 2>/dev/null | cksum | cut -d' ' -f1)
WSTEST=$ENV_DIR/py2/bin/wstest
if [[ ! -x $WSTEST || $(cat "$ENV_DIR/stamp" 2>/dev/null) != "$stamp" ]]; then
    log "building the Python 2.7 environment in $ENV_DIR"
    rm -rf "$ENV_DIR"
    mkdir -p "$ENV_DIR"
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off
    # virtualenv 20.21 is the last release that creates Python 2.7 environments.
    "$PYTHON" -m venv "$ENV_DIR/tool"
    "$ENV_DIR/tool/bin/python" -m pip install -q virtualenv==20.21.1 2>&1 |
        grep -v -e 'is ignored' >&2 || true
    "$ENV_DIR/tool/bin/virtualenv" -q -p "$PYTHON2" "$ENV_DIR/py2"
    # pip on 2.7 warns about the end of Python 2 on every call: keep its noise out of the log.
    "$ENV_DIR/py2/bin/python" -m pip install -q -r "$HERE/requirements-py2.txt" 2>&1 |
        grep -v -e DEPRECATION -e 'is ignored' >&2 || true
    [[ -x $WSTEST ]] || die "wstest did not install"
    echo "$stamp" >"$ENV_DIR/stamp"
    log "environment ready in $((SECONDS - start))s"
fi

# --- 2. the server ------------------------------------------------------------------------------
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
SERVER_LOG=$REPORTS/server.log
"$PYTHON" "$HERE/echo_app.py" 0 >"$REPORTS/server.out" 2>"$SERVER_LOG" &
SERVER_PID=$!
stop_server() {
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
}
trap stop_server EXIT

PORT=
for _ in $(seq 300); do
    PORT=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$REPORTS/server.out")
    [[ -n $PORT ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2; die "the server exited"; }
    sleep 0.1
done
[[ -n $PORT ]] || die "the server did not start within 30 s"
log "echo server (pid $SERVER_PID) on ws://127.0.0.1:$PORT"

# --- 3. wstest ----------------------------------------------------------------------------------
"$PYTHON" - "$HERE/spec.json" "$REPORTS/spec.json" "$PORT" "$REPORTS/reports" \
    "${AUTOBAHN_CASES:-}" <<'PY'
import json, sys
source, target, port, outdir, cases = sys.argv[1:]
spec = json.load(open(source))
spec["servers"][0]["url"] = f"ws://127.0.0.1:{port}"
spec["outdir"] = outdir
if cases:
    spec["cases"] = [c.strip() for c in cases.split(",") if c.strip()]
json.dump(spec, open(target, "w"), indent=2)
PY
log "wstest -m fuzzingclient: cases $("$PYTHON" -c '
import json, sys
cases = json.load(open(sys.argv[1]))["cases"]
print(" ".join(cases) if len(cases) <= 12 else f"{cases[0]} ... {cases[-1]} ({len(cases)} patterns)")
' "$REPORTS/spec.json")"
t0=$SECONDS
if ! (cd "$REPORTS" && timeout --kill-after=10 "$TIMEOUT" "$WSTEST" -m fuzzingclient \
        -s "$REPORTS/spec.json" >"$REPORTS/wstest.log" 2>&1); then
    tail -n 30 "$REPORTS/wstest.log" >&2
    die "wstest failed or timed out after ${TIMEOUT}s (log: $REPORTS/wstest.log)"
fi
log "wstest took $((SECONDS - t0))s (report: $REPORTS/reports/index.html)"
stop_server

# --- 4. summary ---------------------------------------------------------------------------------
"$PYTHON" "$HERE/summarize.py" "$REPORTS/reports"
