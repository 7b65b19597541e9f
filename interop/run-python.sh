#!/usr/bin/env bash
# Starts a dorametrics server on a fresh database and runs the Python client interop test
# against it. Usage: interop/run-python.sh PYTHON BINARY [DATABASE_URL]
set -euo pipefail
python=$1
binary=$2
work=$(mktemp -d)
database=${3:-sqlite://$work/interop.db}
trap 'kill $server_pid 2>/dev/null || true; rm -rf "$work"' EXIT

token=$("$binary" token create --name interop --scope admin --database "$database")
"$binary" serve --listen 127.0.0.1:0 --database "$database" 2>"$work/server.log" &
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
DORA_URL="http://$address" DORA_TOKEN="$token" "$python" "$(dirname "$0")/python/test_datadog_client.py"
