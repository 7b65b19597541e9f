-- What derivation concludes about each deployment (change set lead times, failed, rework,
-- recovery), kept on ingest so the metrics read these rows instead of re-deriving history.
-- A stream is one service's deployments to one env ('' for deployments without env).
CREATE TABLE deployment_facts (
    id               TEXT    PRIMARY KEY,
    service          TEXT    NOT NULL,
    env              TEXT    NOT NULL,
    team             TEXT,
    finished_at      BIGINT  NOT NULL,
    tier             TEXT    NOT NULL,
    project          TEXT    NOT NULL,
    failed           BOOLEAN NOT NULL,
    rework           BOOLEAN NOT NULL,
    recovery_time    BIGINT,
    lead_times       BLOB    NOT NULL,  -- little-endian i64 nanoseconds, ascending
    merge_lead_times BLOB    NOT NULL
);
CREATE INDEX deployment_facts_by_stream ON deployment_facts (service, env);
CREATE INDEX deployment_facts_by_tier ON deployment_facts (tier, finished_at);
CREATE INDEX deployment_facts_by_finished ON deployment_facts (finished_at);
CREATE INDEX deployment_facts_by_project ON deployment_facts (project, finished_at);

-- Streams whose facts are stale: every write that can change a stream appends a row in its own
-- transaction (appends only, so concurrent writers never wait on each other); a
-- re-derivation is stored only if the newest row it saw is still there and none came after,
-- and it removes the rows it saw. `seq` only grows (never reused).
CREATE TABLE dirty_streams (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    env     TEXT NOT NULL
);
CREATE INDEX dirty_streams_by_stream ON dirty_streams (service, env, seq);

-- Settings the stored facts were derived with (the failure window); a change re-derives all.
CREATE TABLE fact_settings (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE INDEX deployments_by_repository ON deployments (repository_id, service, env);

INSERT INTO dirty_streams (service, env)
    SELECT DISTINCT service, COALESCE(env, '') FROM deployments WHERE true;

-- What projects are made of: every (repository id, service) a deployment has named, kept by
-- each deployment write so listing projects needs no scan of the deployments. A pair stays
-- when its deployments are deleted, as a GitLab project stays without deployments.
CREATE TABLE project_sources (
    repository_id TEXT NOT NULL,  -- '' for deployments without git
    service       TEXT NOT NULL,
    PRIMARY KEY (repository_id, service)
);
INSERT INTO project_sources (repository_id, service)
    SELECT DISTINCT COALESCE(repository_id, ''), service FROM deployments WHERE true;
