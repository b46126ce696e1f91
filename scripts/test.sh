#!/usr/bin/env bash
# Runs every test of Petrel: unit and integration tests against a real PostgreSQL cluster
# (started here, one database per test), real HTTPS, real KVM; then the fuzz smoke runs.
# Installs what is missing first. Usage: scripts/test.sh [extra nextest arguments]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PETREL_ROOT"
"$PETREL_ROOT/scripts/setup.sh"

# One PostgreSQL cluster for this run, in a world-searchable place (PostgreSQL runs as the
# `postgres` user when we are root). The tests start it on first use and copy a migrated
# template database per test.
export PETREL_TEST_PG_DIR="${PETREL_TEST_PG_DIR:-/tmp/petrel-test-pg-$$}"
stop_test_cluster() {
    local data="$PETREL_TEST_PG_DIR/data" bin
    if [ -f "$data/postmaster.pid" ]; then
        bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
        if [ "$(id -u)" -eq 0 ]; then
            runuser -u postgres -- "$bin/pg_ctl" stop -D "$data" -m immediate >/dev/null || true
        else
            "$bin/pg_ctl" stop -D "$data" -m immediate >/dev/null || true
        fi
    fi
    rm -rf "$PETREL_TEST_PG_DIR" "$PETREL_TEST_PG_DIR.lock"
}
trap stop_test_cluster EXIT

log "building"
"$PETREL_ROOT/scripts/build-frontend.sh"
cargo build --bins
log "running the tests"
cargo nextest run --profile ci --workspace "$@"

if [ -x "$PETREL_ROOT/scripts/fuzz-smoke.sh" ]; then
    log "fuzzing briefly"
    FUZZ_SECONDS="${FUZZ_SECONDS:-20}" "$PETREL_ROOT/scripts/fuzz-smoke.sh"
fi
