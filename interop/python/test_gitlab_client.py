"""Interop: python-gitlab, unchanged, reading DORA metrics from a running dorametrics.

Usage: DORA_URL=http://127.0.0.1:PORT DORA_TOKEN=... python test_gitlab_client.py EXPECTED_JSON
The server holds the dataset of interop/gitlab/seed.py; the token is restricted to the group acme.
"""

import json
import os
import sys
import urllib.parse

import gitlab


def path(kind, ident):
    return f"/{kind}s/{urllib.parse.quote(ident, safe='')}/dora/metrics"


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    gl = gitlab.Gitlab(os.environ["DORA_URL"], private_token=os.environ["DORA_TOKEN"])
    for case in spec["cases"]:
        query = {"metric": case["metric"], "start_date": spec["start_date"], "end_date": spec["end_date"]}
        if "interval" in case:
            query["interval"] = case["interval"]
        if "environment_tiers" in case:
            query["environment_tiers"] = case["environment_tiers"]
        got = gl.http_get(path(case["kind"], case["id"]), query_data=query)
        assert got == case["expected"], (case, got)
    # Outside the token's group: GitLab's 404, raised as python-gitlab raises it.
    outside = spec["outside"]
    try:
        gl.http_get(path(outside["kind"], outside["id"]), query_data={"metric": "deployment_frequency"})
    except gitlab.exceptions.GitlabHttpError as error:
        assert error.response_code == 404, error
        assert "404 Project Not Found" in str(error.error_message), error.error_message
    else:
        raise AssertionError("a project outside the token's group was readable")
    # A bad parameter: GitLab's 400 shape.
    try:
        gl.http_get(path("project", "acme/shop"), query_data={"metric": "nope"})
    except gitlab.exceptions.GitlabHttpError as error:
        assert error.response_code == 400, error
    else:
        raise AssertionError("an invalid metric was accepted")
    print(f"python-gitlab {gitlab.__version__}: {len(spec['cases'])} DORA metric reads as expected")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        sys.exit(1)
