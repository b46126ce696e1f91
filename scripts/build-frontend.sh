#!/usr/bin/env bash
# Builds the SPA into frontend/dist: cargo (wasm32) -> wasm-bindgen -> wasm-opt. The tools are
# pinned: wasm-bindgen-cli at exactly the version Cargo.lock holds for wasm-bindgen, and
# wasm-opt from npm's binaryen (Debian's binaryen 108 yields wasm that fails to start).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PETREL_ROOT"

BINARYEN_VERSION=132.0.0
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$WASM_BINDGEN_VERSION" ] || { echo "wasm-bindgen not found in Cargo.lock" >&2; exit 1; }

ensure_rust_target wasm32-unknown-unknown
# npm fetches binaryen; the machine's Node.js usually brings it, else Debian's.
command -v npm >/dev/null || ensure_apt nodejs npm
# Without --locked: the CLI's own lock file pins dependencies that no longer build on 1.95.
ensure_cargo_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
ensure_npm_tool binaryen "$BINARYEN_VERSION" wasm-opt

log "building the SPA (wasm32, release)"
cargo build --quiet -p petrel-frontend --profile wasm-release --target wasm32-unknown-unknown
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/petrel-frontend.wasm"

out="$PETREL_ROOT/frontend/dist"
staging="$out.tmp"
rm -rf "$staging"
mkdir -p "$staging"
wasm-bindgen --target web --no-typescript --out-dir "$staging" --out-name petrel "$wasm"
# --low-memory-unused: Rust's wasm keeps its stack in the first MiB, growing down, so the lowest
# KiB is never addressed and loads/stores there can fold their offsets.
wasm-opt -Oz --low-memory-unused --strip-debug --strip-producers --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    "$staging/petrel_bg.wasm" -o "$staging/petrel_bg.opt.wasm"
mv "$staging/petrel_bg.opt.wasm" "$staging/petrel_bg.wasm"
cp frontend/static/* "$staging/"
rm -rf "$out"
mv "$staging" "$out"
wasm_gz=$(gzip -9 -c "$out/petrel_bg.wasm" | wc -c)
js_gz=$(gzip -9 -c "$out/petrel.js" | wc -c)
log "SPA built: $(du -sh "$out" | cut -f1) in frontend/dist; gzipped: $((wasm_gz + js_gz)) bytes ($wasm_gz of wasm, $js_gz of JS; goal: under 400 KB)"
