-- Repository history: commits with their parents (space-separated shas) and, when known,
-- the merge request / pull request they belong to.
CREATE TABLE commits (
    repository_id TEXT   NOT NULL,
    sha           TEXT   NOT NULL,
    parents       TEXT   NOT NULL,
    authored_at   BIGINT NOT NULL,
    committed_at  BIGINT NOT NULL,
    author        TEXT,
    subject       TEXT,
    mr_number     BIGINT,
    mr_created_at BIGINT,
    mr_merged_at  BIGINT,
    PRIMARY KEY (repository_id, sha)
);
