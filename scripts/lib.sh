# Shared shell helpers, sourced by the other scripts in this folder.
# Everything here is idempotent: a second run on a prepared machine does nothing slow.
set -euo pipefail

PETREL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Tools installed by `cargo install` / npm live here, outside the work tree, so a fresh clone
# on the same machine reuses them.
PETREL_TOOLS="${PETREL_TOOLS:-$HOME/.cache/petrel-tools}"
export PATH="$PETREL_TOOLS/bin:$PETREL_TOOLS/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

_apt_updated=0
# ensure_apt PKG...: install the Debian packages that are not installed yet.
ensure_apt() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    if [ "$_apt_updated" -eq 0 ]; then as_root apt-get update -qq; _apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_apt_file FILE: install every package listed in FILE (one per line, # comments).
ensure_apt_file() {
    local pkgs
    pkgs=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$1")
    # shellcheck disable=SC2086
    ensure_apt $pkgs
}

# ensure_cargo_tool CRATE VERSION BINARY [cargo install flags...]: a pinned tool under $PETREL_TOOLS.
ensure_cargo_tool() {
    local crate=$1 version=$2 bin=$3
    shift 3
    if [ -x "$PETREL_TOOLS/bin/$bin" ] && [ -f "$PETREL_TOOLS/.$crate-$version" ]; then return 0; fi
    log "installing $crate $version (once per machine)"
    cargo install --quiet --root "$PETREL_TOOLS" --version "=$version" "$crate" "$@"
    touch "$PETREL_TOOLS/.$crate-$version"
}

# ensure_node MAJOR.MINOR: Node.js and npm, at least this version (for the npm tools below).
ensure_node() {
    local want=$1 have
    command -v npm >/dev/null || ensure_apt nodejs npm
    have=$(node --version | sed 's/^v//')
    if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n 1)" != "$want" ]; then
        echo "Node.js $have is too old: the npm tools need $want or newer (Debian 13's nodejs, or NodeSource's)" >&2
        exit 1
    fi
}

# ensure_npm_tool PACKAGE VERSION BINARY: a pinned npm package under $PETREL_TOOLS, its commands
# in $PETREL_TOOLS/node_modules/.bin.
ensure_npm_tool() {
    local package=$1 version=$2 bin=$3 stamp
    stamp="$PETREL_TOOLS/.${package//\//+}-$version"
    if [ -x "$PETREL_TOOLS/node_modules/.bin/$bin" ] && [ -f "$stamp" ]; then return 0; fi
    log "installing $package $version from npm (once per machine)"
    mkdir -p "$PETREL_TOOLS"
    npm install --silent --no-audit --no-fund --save-exact --prefix "$PETREL_TOOLS" "$package@$version" >/dev/null
    touch "$stamp"
}

# ensure_rust_target TRIPLE
ensure_rust_target() {
    rustup target list --installed 2>/dev/null | grep -qx "$1" || rustup target add "$1"
}

# ensure_rust_component NAME (e.g. rust-src)
ensure_rust_component() {
    rustup component list --installed 2>/dev/null | grep -qx "$1" || rustup component add "$1"
}
