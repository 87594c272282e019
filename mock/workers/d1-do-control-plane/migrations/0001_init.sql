-- The D1 half of the d1-do-control-plane reference Worker's control plane.
-- Applied in file order (as `wrangler d1 migrations apply` does); kvchaos's
-- launcher applies them at start. Times are ms since the Unix epoch.

-- Task queue: at-least-once with leases. `seq` orders claims (oldest first).
CREATE TABLE tasks (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT    NOT NULL UNIQUE,
  payload      TEXT    NOT NULL,            -- JSON
  status       TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'leased', 'done')),
  consumer     TEXT,
  lease_until  INTEGER,
  attempts     INTEGER NOT NULL DEFAULT 0,
  result       TEXT,                        -- JSON
  enqueued_at  INTEGER NOT NULL,
  completed_at INTEGER
);
CREATE INDEX tasks_due ON tasks (status, lease_until);

-- Idempotency keys, per scope (e.g. 'webhook').
CREATE TABLE idempotency_keys (
  scope      TEXT    NOT NULL,
  key        TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (scope, key)
);

-- The cron run's state: one row.
CREATE TABLE cron_state (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  last_run INTEGER,
  runs     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO cron_state (id, last_run, runs) VALUES (1, NULL, 0);

-- OAuth refresh tokens, rotated by the cron run.
CREATE TABLE oauth_tokens (
  provider      TEXT    PRIMARY KEY,
  refresh_token TEXT    NOT NULL,
  generation    INTEGER NOT NULL,
  rotated_at    INTEGER
);
