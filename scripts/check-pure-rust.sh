#!/usr/bin/env bash
# Fails if a library crate or the CLI depends on a `*-sys` crate (C code). The `rdkafka`
# crate and other C peers are allowed only in tests/ and benches/.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for pkg in sluice-protocol sluice-client sluice-stream sluice-mock sluice-cli; do
  sys=$(cargo tree -p "$pkg" -e normal,build --prefix none --locked | awk '{print $1}' | grep -E -- '-sys$' | sort -u || true)
  if [ -n "$sys" ]; then
    echo "$pkg depends on C through: $sys" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "no -sys crate in protocol, client, stream, mock or cli"
exit $status
