"""The DuckDB baseline of `dora-bench run`.

Loads a generated data set's CSV tables into a fresh DuckDB file, runs the named queries of
queries.sql (the same text PostgreSQL runs) and prints one JSON document on stdout: load
times, each query's rows (from its first run) and the wall time of every timed run.

    python duckdb_baseline.py --data DIR --db FILE --queries queries.sql \
        --params '{"from": "2025-01-01 00:00:00", ...}' --repeat 5
"""

import argparse
import json
import os
import re
import sys
import time

import duckdb

# Analytical tables as a warehouse holds them: no primary keys (DuckDB does not need them to
# answer, and they only slow loading down).
SCHEMA = {
    "deployments": """
        id VARCHAR, service VARCHAR, team VARCHAR, env VARCHAR, tier VARCHAR, project VARCHAR,
        repository_id VARCHAR, version VARCHAR, sha VARCHAR, started_at TIMESTAMP,
        finished_at TIMESTAMP, failed BOOLEAN, rework BOOLEAN, recovery_s BIGINT""",
    "changes": "deployment_id VARCHAR, sha VARCHAR, committed_at TIMESTAMP, merged_at TIMESTAMP",
    "failures": """
        id VARCHAR, service VARCHAR, team VARCHAR, env VARCHAR, started_at TIMESTAMP,
        finished_at TIMESTAMP, version VARCHAR, sha VARCHAR, deployment_id VARCHAR,
        rule VARCHAR""",
    "commits": """
        repository_id VARCHAR, sha VARCHAR, parents VARCHAR, authored_at TIMESTAMP,
        committed_at TIMESTAMP, subject VARCHAR, mr_number BIGINT, mr_created_at TIMESTAMP,
        mr_merged_at TIMESTAMP""",
}


def named_queries(path):
    """The `-- name: x` blocks of a SQL file, comments dropped."""
    queries = {}
    name = None
    for line in open(path, encoding="utf-8"):
        match = re.match(r"--\s*name:\s*(\S+)", line)
        if match:
            name = match.group(1)
            queries[name] = ""
        elif name is not None and not line.lstrip().startswith("--"):
            queries[name] += line
    return {name: text.strip().rstrip(";") for name, text in queries.items()}


def literal(value):
    return "'" + str(value).replace("'", "''") + "'"


def substitute(sql, params):
    def replace(match):
        key = match.group(1)
        if key not in params:
            raise KeyError(f"no value for {{{key}}}")
        return literal(params[key])

    return re.sub(r"\{([a-z_]+)\}", replace, sql)


def plain(value):
    """JSON-friendly cell values (dates as text, decimals as floats)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--params", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated query names")
    args = parser.parse_args()
    params = json.loads(args.params)

    for suffix in ("", ".wal"):
        if os.path.exists(args.db + suffix):
            os.remove(args.db + suffix)
    con = duckdb.connect(args.db)
    con.execute("SET TimeZone = 'UTC'")

    load = {}
    for table, columns in SCHEMA.items():
        con.execute(f"CREATE TABLE {table} ({columns})")
        path = os.path.join(args.data, f"{table}.csv")
        started = time.perf_counter()
        con.execute(f"COPY {table} FROM {literal(path)} (HEADER, DELIMITER ',', QUOTE '\"')")
        con.execute("CHECKPOINT")
        seconds = time.perf_counter() - started
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        load[table] = {"rows": rows, "seconds": seconds}

    wanted = {name for name in args.only.split(",") if name}
    queries = {}
    for name, sql in named_queries(args.queries).items():
        if wanted and name not in wanted:
            continue
        text = substitute(sql, params)
        cursor = con.execute(text)
        columns = [d[0] for d in cursor.description]
        rows = [[plain(v) for v in row] for row in cursor.fetchall()]
        timings = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            con.execute(text).fetchall()
            timings.append(time.perf_counter() - started)
        queries[name] = {"columns": columns, "rows": rows, "seconds": timings}

    con.close()
    json.dump(
        {
            "engine": f"DuckDB {duckdb.__version__}",
            "load": load,
            "queries": queries,
            "size_bytes": os.path.getsize(args.db),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
