#!/usr/bin/env bash
# Fuzz smoke test: runs every cargo-fuzz target of every fuzz crate (FUZZ_CRATES below) for
# FUZZ_SECONDS (default 30) each and fails on any crash. Seeds: the hypervisor's image target
# gets the test guests; otherwise CRATE/fuzz/seeds/TARGET/ when it exists.
# Crash inputs are kept in CRATE/fuzz/artifacts/TARGET/ for reproduction with
# `cargo fuzz run TARGET FILE` from CRATE (with RUSTC_BOOTSTRAP=1, see below).
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

# Every directory holding a cargo-fuzz crate (its own workspace, see its Cargo.toml).
FUZZ_CRATES=(hypervisor-agent inputs)

for crate in "${FUZZ_CRATES[@]}"; do
    cd "$PETREL_ROOT/$crate"
    for target in $(cargo fuzz list); do
        name="$crate-$target"
        mkdir -p "$work/corpus-$name"
        seeds="$work/seeds-$target"
        if [ "$crate" != hypervisor-agent ] || [ ! -d "$seeds" ]; then
            seeds="$PETREL_ROOT/$crate/fuzz/seeds/$target"
        fi
        [ -d "$seeds" ] || seeds=""
        log "fuzzing $crate $target for ${seconds}s"
        # shellcheck disable=SC2086 # $seeds is empty or one directory
        # libFuzzer is chatty: keep its log, show it only on failure.
        if ! cargo fuzz run "$target" "$work/corpus-$name" $seeds -- \
            -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 >"$work/$name.log" 2>&1; then
            tail -n 60 "$work/$name.log" >&2
            echo "fuzz target $target failed; the crashing input is in $crate/fuzz/artifacts/$target/" >&2
            exit 1
        fi
        grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$work/$name.log" | sed "s/^/    $name /" >&2 || true
    done
done
log "fuzz smoke test passed"
