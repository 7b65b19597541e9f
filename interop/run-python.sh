#!/usr/bin/env bash
# Runs the Datadog Python client interop test against a fresh server.
# Usage: interop/run-python.sh PYTHON BINARY [DATABASE_URL]
set -euo pipefail
here=$(dirname "$0")
exec "$here/with-server.sh" "$2" "${3:-}" "$1" "$here/python/test_datadog_client.py"
