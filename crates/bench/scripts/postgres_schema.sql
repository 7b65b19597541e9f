-- The PostgreSQL baseline's tables, as a Four Keys / DevLake style warehouse holds them:
-- deployments with their derived verdicts, the shipped commits of each deployment, failures,
-- and the raw commits (loaded only to time bulk intake). Primary keys and the indexes intake
-- must maintain exist before loading; the query indexes are built after (see INDEXES below).
CREATE TABLE deployments (
  id text PRIMARY KEY,
  service text NOT NULL,
  team text,
  env text,
  tier text,
  project text,
  repository_id text,
  version text,
  sha text,
  started_at timestamp NOT NULL,
  finished_at timestamp NOT NULL,
  failed boolean NOT NULL,
  rework boolean NOT NULL,
  recovery_s bigint
);
CREATE TABLE changes (
  deployment_id text NOT NULL,
  sha text NOT NULL,
  committed_at timestamp NOT NULL,
  merged_at timestamp
);
CREATE TABLE failures (
  id text PRIMARY KEY,
  service text NOT NULL,
  team text,
  env text,
  started_at timestamp NOT NULL,
  finished_at timestamp,
  version text,
  sha text,
  deployment_id text,
  rule text
);
CREATE TABLE commits (
  repository_id text NOT NULL,
  sha text NOT NULL,
  parents text,
  authored_at timestamp NOT NULL,
  committed_at timestamp NOT NULL,
  subject text,
  mr_number bigint,
  mr_created_at timestamp,
  mr_merged_at timestamp,
  PRIMARY KEY (repository_id, sha)
);
-- Single-event intake (INSERT … ON CONFLICT, one transaction per event): the same table and
-- indexes as `deployments`, kept apart so the metric tables stay as loaded.
CREATE TABLE deployments_intake (LIKE deployments INCLUDING ALL);
CREATE INDEX ON deployments_intake (service, env, finished_at);
CREATE INDEX ON deployments_intake (finished_at);

-- INDEXES
CREATE INDEX ON deployments (service, env, finished_at);
CREATE INDEX ON deployments (tier, finished_at);
CREATE INDEX ON deployments (team, tier, finished_at);
CREATE INDEX ON deployments (project, tier, finished_at);
CREATE INDEX ON changes (deployment_id);
CREATE INDEX ON failures (service, env, finished_at);
ANALYZE;
