#!/usr/bin/env bash
# The handover soak of issue #16: the two partition-handover tests (kill -9 then restart, two
# workers with one stopped) run N times in a row with one core kept busy; stops at the first
# failure and keeps that run's directory (its workers' logs); prints the tally.
#
#   bench/handover_soak.sh [RUNS]            # default 30; RUNS=5 for a quick look
#
# Needs the local stack (`hito up`; the tests reuse it). Each run gets its own --basetemp under
# $SOAK_DIR (default: a new directory under /tmp); passing runs' directories are deleted unless
# the recovery watch had to read a changelog again (its warnings say what the consumer saw).
set -uo pipefail

runs="${1:-30}"
root="$(cd "$(dirname "$0")/.." && pwd)"
soak_dir="${SOAK_DIR:-$(mktemp -d /tmp/handover-soak.XXXXXX)}"
mkdir -p "$soak_dir"
export HITO_PROFILE="${HITO_PROFILE:-development}"

# One core kept busy for the whole soak (the scheduling pressure CI had when the handover
# failures showed up); stopped by its own pid on exit.
python3 -c "while True: pass" &
burner=$!
trap 'kill "$burner" 2>/dev/null' EXIT

passed=0
rereads=0  # changelog partitions the recovery watch read again (docs/aggregation.md)
kept=0  # changelog partitions the consumer sought back after a fetch dropped while flow stopped
started=$(date +%s)
for ((i = 1; i <= runs; i++)); do
    run_dir="$soak_dir/run-$i"
    run_started=$(date +%s)
    if (cd "$root" && .venv/bin/pytest tests/integration/pipeline/test_faults.py \
        -k "kill_9 or two_workers" -x -q -p no:cacheprovider --basetemp="$run_dir" \
        >"$soak_dir/run-$i.log" 2>&1); then
        passed=$((passed + 1))
        # (*[0-9]: pytest also links the newest directory as *current)
        stalls=$(cat "$run_dir"/*[0-9]/*.log 2>/dev/null | grep -c "reading it again from")
        rereads=$((rereads + stalls))
        kept=$((kept + $(cat "$run_dir"/*[0-9]/*.log 2>/dev/null |
            grep -c "came back while flow was stopped")))
        echo "run $i/$runs passed ($(($(date +%s) - run_started)) s)" \
            "$([[ $stalls -gt 0 ]] && echo "- the recovery watch read $stalls changelog" \
                "partitions again: kept in $run_dir")"
        [[ $stalls -gt 0 ]] || rm -rf "$run_dir" "$soak_dir/run-$i.log"
    else
        echo "run $i/$runs FAILED ($(($(date +%s) - run_started)) s): pytest output" \
            "$soak_dir/run-$i.log, worker logs under $run_dir"
        tail -n 30 "$soak_dir/run-$i.log"
        break
    fi
done
echo "handover soak: $passed of $runs runs passed ($(($(date +%s) - started)) s, one core busy;" \
    "$rereads changelog partitions read again by the recovery watch, $kept sought back by the" \
    "consumer after a fetch dropped while flow was stopped)"
[[ $passed -eq $runs ]]
