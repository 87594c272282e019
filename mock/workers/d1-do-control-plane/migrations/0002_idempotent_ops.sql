-- Idempotent operations (POST /idem/{key}): the key is UNIQUE, and the operation's effect
-- is counted in the same transaction, so it happens once per key whatever the retries.
CREATE TABLE idem_ops (
  key        TEXT    PRIMARY KEY,
  op         TEXT    NOT NULL,            -- the request that won the key
  created_at INTEGER NOT NULL
);

-- Each key's effect count, read by GET /idem/{key}.
CREATE TABLE idem_effects (
  key     TEXT    PRIMARY KEY,
  effects INTEGER NOT NULL
);
