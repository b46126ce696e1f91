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
# std's sources, rebuilt for the SPA below (-Z build-std).
ensure_rust_component rust-src
# npm fetches binaryen; the machine's Node.js usually brings it, else Debian's.
command -v npm >/dev/null || ensure_apt nodejs npm
# Without --locked: the CLI's own lock file pins dependencies that no longer build on 1.95.
ensure_cargo_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
ensure_npm_tool binaryen "$BINARYEN_VERSION" wasm-opt

log "building the SPA (wasm32, release)"
# Size: std is compiled again for this build only, with panic=immediate-abort (a panic traps at
# once, so no panic message is formatted and most of core::fmt and every panic location drop out),
# no location details, and std's optimize_for_size algorithms. About 30 KB less gzipped.
# These are -Z flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain (1.95) accept
# them. It is set for this command only and only for size; the host build, the tests and
# `cargo clippy --target wasm32-unknown-unknown` stay plain stable with the prebuilt std.
# --config adds to the rustflags in .cargo/config.toml (erase_components) rather than replacing them.
RUSTC_BOOTSTRAP=1 cargo build --quiet -p petrel-frontend --profile wasm-release --target wasm32-unknown-unknown \
    -Z build-std=std,panic_abort -Z build-std-features=optimize_for_size \
    --config 'target.wasm32-unknown-unknown.rustflags = ["-Zunstable-options", "-Cpanic=immediate-abort", "-Zlocation-detail=none"]'
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
