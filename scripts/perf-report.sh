#!/usr/bin/env bash
# The performance report: runs every benchmark of the project and prints one table of their
# headline figures, each beside its goal. Benchmarks, not tests: the figures inform, nothing
# fails on noise. Each benchmark's own full output goes to target/perf/<name>.log.
#
#   scripts/perf-report.sh            # everything (the API benchmark seeds 1,000,000 builds)
#   scripts/perf-report.sh tender spa # only these (tender compare treemap queue deploy api spa bundle)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PETREL_ROOT"
all=(tender compare treemap queue deploy api bundle spa)
wanted=("${@:-${all[@]}}")
out="$PETREL_ROOT/target/perf"
mkdir -p "$out"
export PETREL_PERF_REPORT="$out/figures.tsv"
: > "$PETREL_PERF_REPORT"
failed=()

bench() { # NAME COMMAND...
    local name=$1
    shift
    log "$name: $* (log: target/perf/$name.log)"
    if ! "$@" > "$out/$name.log" 2>&1; then
        failed+=("$name")
        printf '%s\t%s\t%s\t%s\n' "$name" "the benchmark failed" "see target/perf/$name.log" "" >> "$PETREL_PERF_REPORT"
    fi
}

for name in "${wanted[@]}"; do
    case "$name" in
        tender) bench tender cargo bench -p petrel-hypervisor --bench tender ;;
        compare) bench compare cargo bench -p petrel-inputs --bench compare ;;
        treemap) bench treemap cargo bench -p petrel-inputs --bench treemap ;;
        queue) bench queue cargo bench -p petrel-tests --bench queue ;;
        deploy) bench deploy cargo bench -p petrel-tests --bench deploy ;;
        api) bench api cargo bench -p petrel-tests --bench api ;;
        bundle)
            bench bundle scripts/build-frontend.sh
            size=$(sed -n 's/.*gzipped: \([0-9]*\) bytes.*/\1/p' "$out/bundle.log" | tail -1)
            [ -n "$size" ] && printf '%s\t%s\t%s\t%s\n' bundle "SPA wasm + JS, gzipped" "$size bytes" \
                "<= 400 KB (409600 bytes)" >> "$PETREL_PERF_REPORT"
            ;;
        spa) bench spa cargo bench -p petrel-tests --bench spa ;;
        *) echo "unknown benchmark $name (known: ${all[*]})" >&2; exit 2 ;;
    esac
done

echo
printf '%s\t%s\t%s\t%s\n' BENCH MEASUREMENT FIGURE GOAL | cat - "$PETREL_PERF_REPORT" | column -t -s $'\t'
load=$(cut -d' ' -f1 /proc/loadavg)
echo
echo "($(nproc) cores; 1-minute load average now: $load. Full outputs: target/perf/*.log)"
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}" >&2; exit 1; }
