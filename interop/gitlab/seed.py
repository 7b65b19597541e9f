"""Seeds a running dorametrics with the dataset the GitLab client interop tests read.

Usage: DORA_URL=http://127.0.0.1:PORT DORA_TOKEN=... python seed.py   (standard library only)

2025-03-03 … 2025-03-07, UTC. acme/shop deploys to `production` on 03-03 12:00 (c1, its first:
no baseline), 03-04 12:00 (c2, committed 10:00: 2 h), 03-04 18:00 (c3, committed 14:00: 4 h) and
03-06 10:00 (c4, committed 03-05 10:00: 24 h), which fails (a failure 11:00-12:30); to `staging`
on 03-05. acme/platform/api deploys to `prod-live` on 03-05; billing (no git) to `production`.
The expected answers are in expected.json.
"""

import json
import os
import urllib.request

URL = os.environ["DORA_URL"]
TOKEN = os.environ["DORA_TOKEN"]
SHOP = "https://github.com/acme/shop"


def post(path, body, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        URL + path, data=data, method="POST",
        headers={"DD-API-KEY": TOKEN, "Content-Type": content_type},
    )
    with urllib.request.urlopen(request) as response:
        assert response.status in (200, 202), (path, response.status)


def at(day, hour, minute=0):
    return f"2025-03-{day:02d}T{hour:02d}:{minute:02d}:00Z"


def sha(n):
    return f"{n:x}" * 40


def deploy(service, env, finished, commit=None, repository=SHOP):
    attributes = {"service": service, "env": env, "started_at": finished, "finished_at": finished}
    if commit is not None:
        attributes["git"] = {"repository_url": repository, "commit_sha": sha(commit)}
    post("/api/v2/dora/deployment", {"data": {"attributes": attributes}})


def main():
    commits = [(1, None, at(2, 12)), (2, 1, at(4, 10)), (3, 2, at(4, 14)), (4, 3, at(5, 10))]
    ndjson = "".join(
        json.dumps({
            "repository_url": SHOP, "sha": sha(n), "parents": [sha(p)] if p else [],
            "authored_at": when, "committed_at": when, "subject": f"change {n}",
        }) + "\n"
        for n, p, when in commits
    )
    post("/api/v1/commits", ndjson.encode(), "application/x-ndjson")
    deploy("shop", "production", at(3, 12), 1)
    deploy("shop", "production", at(4, 12), 2)
    deploy("shop", "production", at(4, 18), 3)
    deploy("shop", "production", at(6, 10), 4)
    deploy("shop", "staging", at(5, 9), 3)
    deploy("api", "prod-live", at(5, 15), 10, "https://github.com/acme/platform/api")
    deploy("billing", "production", at(5, 16))
    post("/api/v2/dora/failure", {"data": {"attributes": {
        "name": "Checkout errors", "services": ["shop"], "env": "production",
        "started_at": at(6, 11), "finished_at": at(6, 12, 30),
    }}})


if __name__ == "__main__":
    main()
