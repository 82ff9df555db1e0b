#!/usr/bin/env bash
# Builds the node image from this checkout without pulling anything: a statically linked
# release binary (glibc, +crt-static) in a FROM-scratch image.
#   deploy/build-image.sh [TAG]      (default ezchain:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-ezchain:latest}"
target="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --bin ezchain --target "$target"
binary="target/$target/release/ezchain"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp deploy/Dockerfile "$binary" "$context/"
docker build --quiet --tag "$tag" "$context" >/dev/null
echo "built $tag ($(docker image inspect --format '{{.Size}}' "$tag") bytes) from $binary"
