-- Deployments and failures as received, their searchable attributes, and API tokens.
-- Times are integer nanoseconds since the Unix epoch (UTC). Same shape as the SQLite schema.

CREATE TABLE deployments (
    pk                  BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,
    service             TEXT    NOT NULL,
    env                 TEXT,
    team                TEXT,
    version             TEXT,
    started_at          BIGINT  NOT NULL,
    finished_at         BIGINT  NOT NULL,
    repository_url      TEXT,
    repository_id       TEXT,
    commit_sha          TEXT,
    custom_tags         TEXT    NOT NULL,  -- JSON array of "key:value"
    source              TEXT    NOT NULL,
    received_at         BIGINT  NOT NULL,
    -- What clients said afterwards (PATCH); kept when the event itself is re-posted.
    change_failure      BOOLEAN,
    remediation_type    TEXT,
    remediation_id      TEXT,
    remediation_version TEXT
);
CREATE INDEX deployments_by_finished ON deployments (finished_at, pk);
CREATE INDEX deployments_by_started ON deployments (started_at, pk);
CREATE INDEX deployments_by_version ON deployments (service, env, version, finished_at);

CREATE TABLE deployment_attrs (
    owner_pk BIGINT           NOT NULL,
    key      TEXT             NOT NULL,
    value    TEXT             NOT NULL,
    num      DOUBLE PRECISION
);
CREATE INDEX deployment_attrs_by_key_value ON deployment_attrs (key, value, owner_pk);
CREATE INDEX deployment_attrs_by_owner ON deployment_attrs (owner_pk);

CREATE TABLE failures (
    pk             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT    NOT NULL UNIQUE,
    name           TEXT,
    services       TEXT    NOT NULL,  -- JSON array
    team           TEXT,
    env            TEXT,
    severity       TEXT,
    started_at     BIGINT  NOT NULL,
    finished_at    BIGINT,
    version        TEXT,
    repository_url TEXT,
    repository_id  TEXT,
    commit_sha     TEXT,
    custom_tags    TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    received_at    BIGINT  NOT NULL
);
CREATE INDEX failures_by_started ON failures (started_at, pk);
CREATE INDEX failures_by_finished ON failures (finished_at, pk);

CREATE TABLE failure_attrs (
    owner_pk BIGINT           NOT NULL,
    key      TEXT             NOT NULL,
    value    TEXT             NOT NULL,
    num      DOUBLE PRECISION
);
CREATE INDEX failure_attrs_by_key_value ON failure_attrs (key, value, owner_pk);
CREATE INDEX failure_attrs_by_owner ON failure_attrs (owner_pk);

-- Tokens are stored only as the SHA-256 of the secret.
CREATE TABLE tokens (
    pk         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT   NOT NULL,
    hash       TEXT   NOT NULL UNIQUE,
    scopes     TEXT   NOT NULL,  -- space-separated
    created_at BIGINT NOT NULL
);
