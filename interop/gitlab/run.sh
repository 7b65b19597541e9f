#!/usr/bin/env bash
# The GitLab client interop tests, run inside interop/with-server.sh: seeds the dataset, creates
# a token restricted to the group acme with the CLI (while the server runs), and has python-gitlab
# and gitbeaker read every expected metric with it.
# Usage: interop/with-server.sh BINARY DATABASE_URL interop/gitlab/run.sh PYTHON NODE_MODULES
set -euo pipefail
python=$1
node_modules=$2
here=$(cd "$(dirname "$0")" && pwd)

"$python" "$here/seed.py"
restricted=$("$DORA_BINARY" token create --name gitlab-interop --scope dora_metrics_read \
  --group acme --database "$DORA_DATABASE")
DORA_TOKEN=$restricted "$python" "$here/../python/test_gitlab_client.py" "$here/expected.json"
DORA_TOKEN=$restricted NODE_PATH=$node_modules node "$here/../node/test_gitbeaker.cjs" "$here/expected.json"
