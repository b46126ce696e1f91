#!/usr/bin/env bash
# Fuzz smoke test: runs every cargo-fuzz target of hypervisor-agent/fuzz for FUZZ_SECONDS
# (default 30) and fails on any crash. The image target is seeded with the test guests.
# Crash inputs are kept in hypervisor-agent/fuzz/artifacts/TARGET/ for reproduction with
# `cargo fuzz run TARGET FILE` (with RUSTC_BOOTSTRAP=1, see below).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_cargo_tool cargo-fuzz 0.13.2 cargo-fuzz --locked

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, sanitizer coverage); the stable
# toolchain accepts them when RUSTC_BOOTSTRAP is set. No nightly toolchain is available here.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PETREL_ROOT/target-fuzz}"
seconds="${FUZZ_SECONDS:-30}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Seeds. Image: the real test guests (needs gcc, as the integration tests do).
mkdir -p "$work/seeds-image" "$work/seeds-manifest"
if command -v gcc >/dev/null; then
    make -s -C "$PETREL_ROOT/hypervisor-agent/guests" OUT="$work/guests"
    cp "$work/guests"/*.hvt "$work/seeds-image/"
fi
# Manifest: version 1, one entry (the reserved entry 0, type 0x40000000).
{
    printf '\001\000\000\000\001\000\000\000'
    head -c 68 /dev/zero
    printf '\000\000\000\100'
    head -c 32 /dev/zero
} >"$work/seeds-manifest/reserved-only"

cd "$PETREL_ROOT/hypervisor-agent"
for target in $(cargo fuzz list); do
    mkdir -p "$work/corpus-$target"
    seeds="$work/seeds-$target"
    [ -d "$seeds" ] || seeds=""
    log "fuzzing $target for ${seconds}s"
    # shellcheck disable=SC2086 # $seeds is empty or one directory
    # libFuzzer is chatty: keep its log, show it only on failure.
    if ! cargo fuzz run "$target" "$work/corpus-$target" $seeds -- \
        -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 >"$work/$target.log" 2>&1; then
        tail -n 60 "$work/$target.log" >&2
        echo "fuzz target $target failed; the crashing input is in hypervisor-agent/fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$work/$target.log" | sed "s/^/    $target /" >&2 || true
done
log "fuzz smoke test passed"
