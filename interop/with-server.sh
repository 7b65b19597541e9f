#!/usr/bin/env bash
# Starts a dorametrics server on a fresh database, runs one command against it, then stops it.
# Usage: interop/with-server.sh BINARY DATABASE_URL COMMAND [ARG...]
# An empty DATABASE_URL means a new SQLite file. The command sees DORA_URL, DORA_TOKEN (an admin
# token), and DORA_BINARY and DORA_DATABASE (to create more tokens while the server runs).
# DORA_SERVE_ARGS, when set, are more arguments for `serve` (split on spaces).
set -euo pipefail
binary=$1
work=$(mktemp -d)
database=${2:-sqlite://$work/interop.db}
shift 2
trap 'kill $server_pid 2>/dev/null || true; rm -rf "$work"' EXIT

token=$("$binary" token create --name interop --scope admin --database "$database")
# shellcheck disable=SC2086 # split on purpose
"$binary" serve --listen 127.0.0.1:0 --database "$database" ${DORA_SERVE_ARGS:-} 2>"$work/server.log" &
server_pid=$!
address=""
for _ in $(seq 1 100); do
  address=$(grep -o 'address=[^ ]*' "$work/server.log" | head -n1 | cut -d= -f2 || true)
  [ -n "$address" ] && break
  sleep 0.1
done
if [ -z "$address" ]; then
  echo "the server did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
fi
DORA_URL="http://$address" DORA_TOKEN="$token" DORA_BINARY="$binary" DORA_DATABASE="$database" "$@"
