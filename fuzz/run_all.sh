#!/usr/bin/env bash
# Run every fuzz harness for FUZZ_SECONDS (default 20) each, with the `python` on PATH.
#
#   bash fuzz/run_all.sh                      # what CI runs
#   FUZZ_SECONDS=300 bash fuzz/run_all.sh     # longer
#   FUZZ_ARGS="-jobs=2 -workers=2" bash fuzz/run_all.sh   # extra libFuzzer flags
#
# With atheris (installed here if missing; failure tolerated) each harness runs under libFuzzer
# from its seed corpus (fuzz/corpus/<harness>, read only); new corpus entries go to a temporary
# directory, crashes to $FUZZ_ARTIFACTS (default fuzz/artifacts/, git-ignored).  Without atheris
# it replays the corpus and runs a bounded random-mutation loop through run_one instead.
# Exits non-zero if any harness found a failure, after printing the crashing input's path.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_EACH=${FUZZ_SECONDS:-20}
ARTIFACTS=${FUZZ_ARTIFACTS:-fuzz/artifacts}
HARNESSES=(fuzz_http11 fuzz_detect fuzz_lifespan fuzz_http2 fuzz_websocket)
PY=$(command -v python || command -v python3) || { echo "fuzz: no python on PATH" >&2; exit 2; }
mkdir -p "$ARTIFACTS"
ARTIFACTS=$(cd "$ARTIFACTS" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/asgi-sansio-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "fuzz: $("$PY" -VV | head -n 1) ($PY), ${SECONDS_EACH}s per harness"
if ! "$PY" -c 'import atheris' >/dev/null 2>&1; then
    echo "fuzz: atheris missing; trying: $PY -m pip install -q atheris"
    "$PY" -m pip install -q atheris >"$WORK/pip.log" 2>&1 || tail -n 5 "$WORK/pip.log"
fi
if "$PY" -c 'import atheris' >/dev/null 2>&1; then
    MODE=atheris
else
    MODE=fallback
    echo "fuzz: NOTE: atheris is not importable on this Python: no coverage-guided fuzzing."
    echo "fuzz: NOTE: replaying the corpus, then random mutations through run_one instead."
fi

failed=()
for harness in "${HARNESSES[@]}"; do
    echo
    echo "=== $harness ($MODE, ${SECONDS_EACH}s) ==="
    new_corpus=$WORK/corpus-$harness
    mkdir -p "$new_corpus"
    seeds=(fuzz/corpus/"$harness")
    [[ -d fuzz/regressions/$harness ]] && seeds+=(fuzz/regressions/"$harness")
    before=$(find "$ARTIFACTS" -maxdepth 1 -type f -name "$harness-*" | sort)
    log=$WORK/$harness.log
    if [[ $MODE == atheris ]]; then
        dict=()
        # The raw-byte harnesses only: the others build their input from decisions.
        [[ -f fuzz/http.dict && ($harness == fuzz_http11 || $harness == fuzz_detect) ]] &&
            dict=(-dict=fuzz/http.dict)
        # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
        "$PY" "fuzz/$harness.py" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=60 \
            -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$harness-" "${dict[@]}" \
            ${FUZZ_ARGS:-} "$new_corpus" "${seeds[@]}" >"$log" 2>&1
        rc=$?
    else
        "$PY" "fuzz/$harness.py" --no-atheris -max_total_time="$SECONDS_EACH" \
            -artifact_prefix="$ARTIFACTS/$harness-" "${seeds[@]}" >"$log" 2>&1
        rc=$?
    fi
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|^#[0-9]+ *DONE|no failure' "$log" || true
    if ((rc != 0)); then
        failed+=("$harness")
        tail -n 60 "$log"
        echo "fuzz: $harness FAILED (exit $rc)"
        after=$(find "$ARTIFACTS" -maxdepth 1 -type f -name "$harness-*" | sort)
        for crash in $(comm -13 <(echo "$before") <(echo "$after")); do
            echo "fuzz: crashing input: $crash"
            echo "fuzz:   reproduce: $PY fuzz/$harness.py --replay --trace $crash"
            if (($(wc -c <"$crash") <= 4096)); then
                echo "fuzz:   base64: $(base64 -w0 "$crash")"
            fi
        done
    fi
    echo "fuzz: $harness: $(find "$new_corpus" -type f | wc -l) new corpus entries (in $new_corpus, discarded)"
done

echo
if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: OK (${HARNESSES[*]})"
