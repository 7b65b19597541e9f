-- What each group's deployment facts of one tier add up to on each UTC day (grp '' for every
-- deployment), so the metrics of a whole group read one row a day instead of every
-- deployment's facts (dora_core::rollup). Kept from deployment_facts: a re-derivation that
-- changes the facts of a day marks the day, and the marked days are tallied again.
CREATE TABLE day_tallies (
    grp              TEXT   NOT NULL,
    tier             TEXT   NOT NULL,
    day              BIGINT NOT NULL,  -- days since 1970-01-01
    deployments      BIGINT NOT NULL,
    failed           BIGINT NOT NULL,
    rework           BIGINT NOT NULL,
    lead_times       BYTEA   NOT NULL,  -- little-endian i64 nanoseconds, ascending
    merge_lead_times BYTEA   NOT NULL,
    recovery_times   BYTEA   NOT NULL,
    PRIMARY KEY (grp, tier, day)
);
CREATE INDEX day_tallies_by_day ON day_tallies (day);
-- A day's sorted durations are read whole by every group query: kept out of line but not
-- compressed, so a read copies them instead of decompressing them.
ALTER TABLE day_tallies
    ALTER COLUMN lead_times SET STORAGE EXTERNAL,
    ALTER COLUMN merge_lead_times SET STORAGE EXTERNAL,
    ALTER COLUMN recovery_times SET STORAGE EXTERNAL;

-- Days whose tallies are stale; appended to in the transaction that changes the day's facts.
CREATE TABLE dirty_days (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    day BIGINT NOT NULL
);
CREATE INDEX dirty_days_by_day ON dirty_days (day);

-- Every day that has facts (the floor of finished_at / one day, also before 1970).
INSERT INTO dirty_days (day)
    SELECT DISTINCT (finished_at - ((finished_at % 86400000000000) + 86400000000000) % 86400000000000)
        / 86400000000000
    FROM deployment_facts WHERE true;
