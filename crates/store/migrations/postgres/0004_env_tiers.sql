-- Admin overrides of the environment tier guessed from an env name.
CREATE TABLE env_tiers (
    env  TEXT PRIMARY KEY,
    tier TEXT NOT NULL
);
