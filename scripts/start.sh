#!/usr/bin/env bash
# Starts the whole of Petrel on this machine: the API with the SPA over HTTPS, on its own
# PostgreSQL cluster in ./.petrel (or on $DATABASE_URL). Installs what is missing first.
# One local build worker and, where /dev/kvm works, one KVM agent run too (petrel-api
# --local-worker --local-agent). Extra arguments go to
# petrel-api (see `scripts/start.sh --help`).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PETREL_ROOT"
"$PETREL_ROOT/scripts/setup.sh"
if [ -x "$PETREL_ROOT/scripts/build-frontend.sh" ]; then
    "$PETREL_ROOT/scripts/build-frontend.sh"
fi
log "building petrel-api, petrel-worker, petrel-agent and petrel-hvt (release)"
cargo build --release -p petrel-api -p petrel-worker -p petrel-hypervisor
PETREL_LOCAL_WORKER="${PETREL_LOCAL_WORKER:-true}" PETREL_LOCAL_AGENT="${PETREL_LOCAL_AGENT:-true}" exec "$PETREL_ROOT/target/release/petrel-api" "$@"
