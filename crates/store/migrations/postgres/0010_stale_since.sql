-- When each stale mark was made (nanoseconds since the epoch, by the database's clock), so that
-- GET /api/v1/status can say how long the oldest unapplied write has waited for its facts.
-- Marks kept from before count from now.
ALTER TABLE dirty_streams ADD COLUMN marked_at BIGINT NOT NULL
    DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint;
