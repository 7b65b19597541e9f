-- Commits kept in the order they arrived in each repository (its ordinals): reading a
-- repository's whole graph is then one sequential run of pages, not a look-up per commit in
-- sha order. The sha stays unique through its own index.
CREATE TABLE commits_by_ordinal (
    repository_id TEXT   NOT NULL,
    ordinal       BIGINT NOT NULL,
    sha           TEXT   NOT NULL,
    parents       TEXT   NOT NULL,
    authored_at   BIGINT NOT NULL,
    committed_at  BIGINT NOT NULL,
    author        TEXT,
    subject       TEXT,
    mr_number     BIGINT,
    mr_created_at BIGINT,
    mr_merged_at  BIGINT,
    PRIMARY KEY (repository_id, ordinal)
) WITHOUT ROWID;
INSERT INTO commits_by_ordinal (repository_id, ordinal, sha, parents, authored_at, committed_at,
        author, subject, mr_number, mr_created_at, mr_merged_at)
    SELECT repository_id, ordinal, sha, parents, authored_at, committed_at, author, subject,
        mr_number, mr_created_at, mr_merged_at
    FROM commits ORDER BY repository_id, ordinal;
DROP TABLE commits;
ALTER TABLE commits_by_ordinal RENAME TO commits;
CREATE UNIQUE INDEX commits_by_sha ON commits (repository_id, sha);
