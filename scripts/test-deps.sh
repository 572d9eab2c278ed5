#!/usr/bin/env bash
# Installs the system packages the tests need, and nothing when they are present already.
#
#   make, gcc, libc6-dev   the `rdkafka` crate (tests/ and benches/ only) compiles librdkafka,
#                          zlib and zstd from source with them; no cmake, openssl or curl
#   python3, python3-venv  scripts/broker.sh and scripts/python-env.sh install into virtualenvs
#
# Debian and Ubuntu only (apt-get); elsewhere it names what is missing and fails.
set -euo pipefail

missing=()
need() { missing+=("$@"); }
installed() { dpkg -s "$1" >/dev/null 2>&1; }

command -v make >/dev/null || need make
if ! command -v cc >/dev/null; then need gcc libc6-dev; fi
if command -v dpkg >/dev/null && ! installed libc6-dev; then need libc6-dev; fi
if ! command -v python3 >/dev/null; then
  need python3 python3-venv
elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  need python3-venv
fi

[ ${#missing[@]} -eq 0 ] && exit 0
# De-duplicate, keeping the order.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')

if ! command -v apt-get >/dev/null; then
  echo "test-deps.sh: install these (Debian names) with your package manager: ${missing[*]}" >&2
  exit 1
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "test-deps.sh: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
