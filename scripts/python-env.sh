#!/usr/bin/env bash
# Creates .venv with the pinned Python peers (kafka-python and its codec backends), once.
set -euo pipefail
cd "$(dirname "$0")/.."
req=scripts/interop/requirements.txt
stamp=.venv/.requirements.sha
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
