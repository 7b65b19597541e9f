-- When each stale mark was made (nanoseconds since the epoch, by the database's clock), so that
-- GET /api/v1/status can say how long the oldest unapplied write has waited for its facts.
-- SQLite cannot add a column with a computed default: the table is made again, its sequence
-- carried over (a row at the old sequence's value, removed again) so that `seq` never goes back.
-- Marks kept from before count from now.
CREATE TABLE dirty_streams_marked (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    service   TEXT    NOT NULL,
    env       TEXT    NOT NULL,
    marked_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000000 AS INTEGER))
);
INSERT INTO dirty_streams_marked (seq, service, env) SELECT seq, service, env FROM dirty_streams;
INSERT INTO dirty_streams_marked (seq, service, env)
    SELECT seq, '', '' FROM sqlite_sequence
    WHERE name = 'dirty_streams' AND seq NOT IN (SELECT seq FROM dirty_streams);
DELETE FROM dirty_streams_marked WHERE service = '' AND env = '';
DROP TABLE dirty_streams;
ALTER TABLE dirty_streams_marked RENAME TO dirty_streams;
CREATE INDEX dirty_streams_by_stream ON dirty_streams (service, env, seq);
