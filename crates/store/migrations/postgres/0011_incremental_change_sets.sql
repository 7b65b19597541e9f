-- Incremental change sets. Each commit gets its place in its repository (0, 1, 2, … as they
-- arrive; existing ones in sha order), the numbers a stream's set of shipped commits is kept in.
ALTER TABLE commits ADD COLUMN ordinal BIGINT NOT NULL DEFAULT 0;
UPDATE commits SET ordinal = numbered.ordinal
    FROM (SELECT repository_id, sha,
                 row_number() OVER (PARTITION BY repository_id ORDER BY sha) - 1 AS ordinal
          FROM commits) numbered
    WHERE commits.repository_id = numbered.repository_id AND commits.sha = numbered.sha;
-- How many commits each repository holds: the next ordinal.
CREATE TABLE repositories (
    repository_id TEXT   PRIMARY KEY,
    commits       BIGINT NOT NULL
);
INSERT INTO repositories (repository_id, commits)
    SELECT repository_id, COUNT(*) FROM commits GROUP BY repository_id;

-- Shas that a stored commit names as a parent, or a stored deployment as its commit, but that
-- are not stored: when one arrives, change sets already derived can change.
CREATE TABLE commit_holes (
    repository_id TEXT NOT NULL,
    sha           TEXT NOT NULL,
    PRIMARY KEY (repository_id, sha)
);
INSERT INTO commit_holes (repository_id, sha)
    SELECT DISTINCT d.repository_id, d.commit_sha FROM deployments d
    WHERE d.repository_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM commits c
        WHERE c.repository_id = d.repository_id AND c.sha = d.commit_sha);
-- Every parent not stored (`parents` is space-separated shas).
INSERT INTO commit_holes (repository_id, sha)
    SELECT DISTINCT n.repository_id, n.parent
    FROM (SELECT repository_id, unnest(string_to_array(parents, ' ')) AS parent
          FROM commits WHERE parents <> '') n
    WHERE n.parent <> '' AND NOT EXISTS (SELECT 1 FROM commits c
        WHERE c.repository_id = n.repository_id AND c.sha = n.parent)
    ON CONFLICT DO NOTHING;

-- What each stream's change sets were derived up to: its last deployment then, the repository
-- its change sets walk, and the ordinals of every commit its deployments shipped (a serialized
-- roaring bitmap). A deployment appended after it is derived from these alone.
CREATE TABLE stream_heads (
    service          TEXT   NOT NULL,
    env              TEXT   NOT NULL,
    last_id          TEXT   NOT NULL,
    last_finished_at BIGINT NOT NULL,
    repository_id    TEXT,
    shipped          BYTEA  NOT NULL,
    PRIMARY KEY (service, env)
);

-- Whether a mark can change change sets already derived (a deployment inside the stream's past,
-- a delete, a commit filling a hole); else only the verdicts and what was appended at the end.
ALTER TABLE dirty_streams ADD COLUMN history BOOLEAN NOT NULL DEFAULT TRUE;
