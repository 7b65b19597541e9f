-- Webhooks in. A hook: deliveries to its provider's endpoint that verify with its secret are its
-- own (the secret is kept as it is: a signature can only be checked with it).
CREATE TABLE webhooks (
    name            TEXT    PRIMARY KEY,
    provider        TEXT    NOT NULL,
    secret          TEXT    NOT NULL,
    deploy_workflow TEXT,
    deploy_env      TEXT,
    incident_label  TEXT,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX webhooks_by_provider ON webhooks (provider, name);

-- Every delivery, newest last; a replay is known by the provider's own delivery id.
CREATE TABLE webhook_deliveries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT    NOT NULL,
    delivery_id TEXT,
    hook        TEXT,
    event       TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    outcome     TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_by_id ON webhook_deliveries (provider, delivery_id)
    WHERE delivery_id IS NOT NULL AND outcome <> 'refused';

-- The time of the newest state of a provider's object (an incident, an issue) that was applied:
-- a delivery of an older state, arriving late, is not applied over it.
CREATE TABLE webhook_objects (
    provider  TEXT   NOT NULL,
    object_id TEXT   NOT NULL,
    as_of     BIGINT NOT NULL,
    PRIMARY KEY (provider, object_id)
);

-- A name a provider uses (a repository, a PagerDuty service, …) → the dorametrics service.
CREATE TABLE webhook_aliases (
    provider TEXT NOT NULL,
    name     TEXT NOT NULL,
    service  TEXT NOT NULL,
    PRIMARY KEY (provider, name)
);

-- Merge-request facts of a merge commit not stored yet (a merged PR's delivery came before the
-- push's): applied when the commit arrives.
CREATE TABLE pending_merge_requests (
    repository_id TEXT   NOT NULL,
    sha           TEXT   NOT NULL,
    mr_number     BIGINT NOT NULL,
    mr_created_at BIGINT,
    mr_merged_at  BIGINT,
    PRIMARY KEY (repository_id, sha)
);

-- Parents a push delivery implied (it lists commits, not their parents): replaced when the true
-- ones arrive (import git, POST /api/v1/commits).
ALTER TABLE commits ADD COLUMN parents_inferred BOOLEAN NOT NULL DEFAULT FALSE;
