#!/usr/bin/env bash
# The real `datadog-ci dora deployment` (npm @datadog/datadog-ci) sending a deployment to
# dorametrics over TLS, exactly as it sends one to Datadog: to https://api.$DD_SITE. The test
# makes a CA and a certificate for api.dora.test, maps that name to 127.0.0.1 in /etc/hosts (the
# entry is removed on exit), trusts the CA through NODE_EXTRA_CA_CERTS, and runs datadog-ci in a
# git checkout whose remote URL carries credentials. It then checks that the deployment arrived,
# with its service, env, version, sha and repository, and that the credentials were stored
# nowhere.
# Usage: interop/datadog-ci/run.sh BINARY NODE_MODULES [DATABASE_URL]
set -euo pipefail
binary=$(realpath "$1")
datadog_ci=$(realpath "$2")/.bin/datadog-ci
work=$(mktemp -d)
database=${3:-sqlite://$work/datadog-ci.db}
host=api.dora.test
hosts_line="127.0.0.1 $host # dorametrics interop $$"
server_pid=""

cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  # Only the line this run added.
  if grep -qF "$hosts_line" /etc/hosts; then
    grep -vF "$hosts_line" /etc/hosts >"$work/hosts" && cat "$work/hosts" >/etc/hosts
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "datadog-ci interop FAILED: $*" >&2
  [ -f "$work/server.log" ] && tail -n 20 "$work/server.log" >&2
  exit 1
}

# A CA, and a certificate it signs for the API host.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=dorametrics interop CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s\n' "$host" >"$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/server.pem" 2>/dev/null

echo "$hosts_line" >>/etc/hosts
token=$("$binary" token create --name datadog-ci --scope admin --database "$database")
"$binary" serve --listen 127.0.0.1:0 --database "$database" \
  --tls-cert "$work/server.pem" --tls-key "$work/server.key" 2>"$work/server.log" &
server_pid=$!
address=""
for _ in $(seq 1 100); do
  address=$(grep -o 'address=[^ ]*' "$work/server.log" | head -n1 | cut -d= -f2 || true)
  [ -n "$address" ] && break
  sleep 0.1
done
[ -n "$address" ] || fail "the server did not start"
port=${address##*:}

# A checkout whose remote URL has credentials in it, as CI checkouts often do.
repo="$work/shop"
git init -q -b main "$repo"
git -C "$repo" -c user.name=ci -c user.email=ci@example.com commit -q --allow-empty -m "Ship it"
git -C "$repo" remote add origin "https://ci-bot:s3cret-t0ken@github.com/acme/shop.git"
sha=$(git -C "$repo" rev-parse HEAD)
started=$(($(date +%s) - 300))

(
  cd "$repo"
  DD_SITE="dora.test:$port" DD_API_KEY="$token" DD_APP_KEY="a-datadog-application-key" \
    DD_BETA_COMMANDS_ENABLED=1 \
    NODE_EXTRA_CA_CERTS="$work/ca.pem" \
    "$datadog_ci" dora deployment --service shop --env production --version v1.2.3 \
    --started-at "$started" --finished-at "$(date +%s)"
) >"$work/datadog-ci.log" 2>&1 || { cat "$work/datadog-ci.log" >&2; fail "datadog-ci exited with an error"; }

list='{"data":{"type":"dora_deployments_list_request","attributes":{"query":"service:shop"}}}'
answer=$(curl -sS --fail-with-body --cacert "$work/ca.pem" --resolve "$host:$port:127.0.0.1" \
  -X POST "https://$host:$port/api/v2/dora/deployments" -H "DD-API-KEY: $token" -d "$list") ||
  fail "listing deployments: $answer"
ANSWER=$answer SHA=$sha python3 - <<'EOF' || fail "the deployment that arrived is not the one sent"
import json, os
data = json.loads(os.environ["ANSWER"])["data"]
assert len(data) == 1, data
attributes = data[0]["attributes"]
assert attributes["service"] == "shop", attributes
assert attributes["env"] == "production", attributes
assert attributes["version"] == "v1.2.3", attributes
assert attributes["git"]["commit_sha"] == os.environ["SHA"], attributes
assert attributes["git"]["repository_id"] == "github.com/acme/shop", attributes
assert "s3cret" not in json.dumps(data), data
print("datadog-ci deployment arrived:", data[0]["id"], attributes["git"])
EOF
# The credentials are nowhere in what was stored.
case "$database" in
sqlite://*)
  file=${database#sqlite://}
  if grep -aq "s3cret-t0ken" "$file"*; then fail "the credentials were stored in $file"; fi
  ;;
*)
  stored=$(psql -X -At "$database" -c "SELECT count(*) FROM deployments WHERE repository_url LIKE '%s3cret%'")
  [ "$stored" = 0 ] || fail "the credentials were stored in the database"
  url=$(psql -X -At "$database" -c "SELECT repository_url FROM deployments")
  [ "$url" = "https://github.com/acme/shop.git" ] || fail "stored repository URL: $url"
  ;;
esac
echo "datadog-ci interop passed"
