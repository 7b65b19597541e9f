-- Token lifecycle: a non-secret id to look a token up by (its secret is then compared in
-- constant time), an optional expiry, when it was last used, and revocation. Tokens made before
-- ids existed get the first 16 hex digits of their hash, which is how they are looked up.
ALTER TABLE tokens ADD COLUMN token_id TEXT;
UPDATE tokens SET token_id = substr(hash, 1, 16);
CREATE UNIQUE INDEX tokens_by_id ON tokens (token_id);
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE tokens ADD COLUMN revoked_at BIGINT;
