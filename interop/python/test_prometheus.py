#!/usr/bin/env python3
"""`GET /metrics` read by Prometheus' own text-format parser (prometheus_client.parser):
every family parses with the type it declares, and the DORA keys per service, env and team
equal what `/api/v1/metrics` reports for the same trailing 30 days. Needs DORA_URL and
DORA_TOKEN (an admin token), as interop/with-server.sh sets them."""

import datetime
import json
import os
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

BASE = os.environ["DORA_URL"]
TOKEN = os.environ["DORA_TOKEN"]


def call(method, path, body=None):
    request = urllib.request.Request(
        BASE + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"DD-API-KEY": TOKEN, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return response.headers, response.read().decode()


def main():
    now = int(time.time())
    for i, (service, env, team) in enumerate(
        [("shop", "production", "web"), ("shop", "production", "web"), ("api", "production", "core"),
         ("api", "prod-eu", None)]
    ):
        attributes = {"service": service, "env": env, "started_at": now - 7200 - i * 600,
                      "finished_at": now - 7000 - i * 600}
        if team:
            attributes["team"] = team
        call("POST", "/api/v2/dora/deployment", {"data": {"attributes": attributes}})
    call("POST", "/api/v2/dora/failure", {"data": {"attributes": {
        "services": ["shop"], "env": "production", "started_at": now - 6000, "finished_at": now - 5400}}})

    headers, text = call("GET", "/metrics")
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers["Content-Type"]
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, kind in [
        ("dora_http_requests", "counter"),
        ("dora_http_request_duration_seconds", "histogram"),
        ("dora_store_write_batch_size", "histogram"),
        ("dora_store_write_queue_depth", "gauge"),
        ("dora_derivation_stale_streams", "gauge"),
        ("dora_deployments", "gauge"),
        ("dora_deployment_frequency_per_day", "gauge"),
        ("dora_change_failure_rate", "gauge"),
        ("dora_time_to_restore_seconds", "gauge"),
    ]:
        assert name in families, (name, sorted(families))
        assert families[name].type == kind, (name, families[name].type)

    today = datetime.datetime.now(datetime.timezone.utc).date()
    start = today - datetime.timedelta(days=29)
    compared = 0
    for by in ["service", "env", "team"]:
        _, body = call("GET", f"/api/v1/metrics?from={start}&to={today}&breakdown={by}")
        for group in json.loads(body)["breakdown"]["groups"]:
            key = group["key"] if group["key"] is not None else "(unset)"
            for family, field in [("dora_deployments", "deployments"),
                                  ("dora_deployment_frequency_per_day", "deployments_per_day"),
                                  ("dora_change_failure_rate", "change_failure_rate")]:
                values = [s.value for s in families[family].samples if s.labels.get(by) == key]
                expected = group["totals"][field]
                if expected is None:
                    assert values == [], (family, by, key, values)
                else:
                    assert values == [expected], (family, by, key, values, expected)
                compared += 1
    assert compared >= 15, compared
    restore = [s for s in families["dora_time_to_restore_seconds"].samples
               if s.labels.get("service") == "shop" and s.labels.get("quantile") == "0.5"]
    assert [s.value for s in restore] == [600.0], restore
    print(f"prometheus interop passed: {len(families)} families, {compared} values compared")


if __name__ == "__main__":
    sys.exit(main())
