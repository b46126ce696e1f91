#!/usr/bin/env bash
# Prepare this machine for building, running and testing Petrel. Safe to run again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_apt_file "$PETREL_ROOT/scripts/deps/apt.txt"
if ! command -v cargo-nextest >/dev/null; then
    ensure_cargo_tool cargo-nextest 0.9.143 cargo-nextest --locked
fi

# ensure_python_tools FILE BINARY...: the pinned PyPI packages of FILE in a virtualenv under
# $PETREL_TOOLS (reinstalled when FILE changes), with BINARY... linked into $PETREL_TOOLS/bin.
ensure_python_tools() {
    local req=$1 venv="$PETREL_TOOLS/venv" stamp python=python3 bin
    shift
    stamp="$PETREL_TOOLS/.venv-$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$req" | sha256sum | cut -c1-16)"
    if [ -f "$stamp" ] && [ -x "$venv/bin/python" ]; then return 0; fi
    log "installing the Python test tools of $(basename "$req") (once per machine)"
    [ -x /usr/bin/python3 ] && python=/usr/bin/python3
    rm -rf "$venv" "$PETREL_TOOLS"/.venv-*
    mkdir -p "$PETREL_TOOLS/bin"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    for bin in "$@"; do
        ln -sf "$venv/bin/$bin" "$PETREL_TOOLS/bin/$bin"
    done
    touch "$stamp"
}
ensure_python_tools "$PETREL_ROOT/scripts/deps/python.txt" moto_server openapi-python-client schemathesis

# The OpenAPI tools of tests/tests/api/clients.rs: the linter, and the TypeScript client's
# generator and compiler (the Python client's generator is in scripts/deps/python.txt).
ensure_node 20.19
ensure_npm_tool @redocly/cli 2.77.0 redocly
ensure_npm_tool @hey-api/openapi-ts 0.95.0 openapi-ts
ensure_npm_tool typescript 5.9.3 tsc
