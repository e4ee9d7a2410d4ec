#!/usr/bin/env bash
# Builds goccy/bigquery-emulator once into a cache keyed by version and prints its path.
# Local stack only: production talks to BigQuery itself.
set -euo pipefail
VERSION="${BQEMU_VERSION:-v0.6.6}"
CACHE="${TRIBUTARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary}"
BIN="$CACHE/bigquery-emulator-$VERSION"
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
command -v clang >/dev/null || { echo "bqemu: clang is required (apt-get install clang)" >&2; exit 1; }
SRC="$CACHE/bqemu-src-$VERSION"
mkdir -p "$SRC"
cd "$SRC"
[[ -f go.mod ]] || go mod init bqemu >/dev/null 2>&1
GOFLAGS=-mod=mod go get "github.com/goccy/bigquery-emulator/cmd/bigquery-emulator@$VERSION" >&2
echo "bqemu: building bigquery-emulator $VERSION (about 20 minutes the first time)" >&2
CGO_ENABLED=1 CC=clang CXX=clang++ go build -o "$BIN.tmp" github.com/goccy/bigquery-emulator/cmd/bigquery-emulator >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
