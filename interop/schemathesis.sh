#!/usr/bin/env bash
# schemathesis (PyPI) against a running server, from the server's own /openapi.json: requests
# generated from every operation's description, and every answer checked — never a 5xx, every
# status, content type and body as described. Run through interop/with-server.sh (DORA_URL,
# DORA_TOKEN); the seed is fixed so that a run can be reproduced.
# Usage: interop/with-server.sh BINARY DATABASE_URL interop/schemathesis.sh SCHEMATHESIS
set -euo pipefail
"$1" run "$DORA_URL/openapi.json" \
  -H "DD-API-KEY: $DORA_TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples 30 --seed 20261202 --no-color
