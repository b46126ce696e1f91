#!/usr/bin/env bash
# Prepare this machine for building, running and testing Petrel. Safe to run again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_apt_file "$PETREL_ROOT/scripts/deps/apt.txt"
if ! command -v cargo-nextest >/dev/null; then
    ensure_cargo_tool cargo-nextest 0.9.143 cargo-nextest --locked
fi
