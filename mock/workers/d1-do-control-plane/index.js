// Reference Worker "d1-do-control-plane": the control plane migrated off KV.
// Locks and the rate limiter are Durable Objects (one per lock name / API
// key); the queue, idempotency keys, cron state and the OAuth token are in D1
// (schema: migrations/0001_init.sql). KV is only a cache with a TTL that
// fails open, so the Worker keeps working fully while every KV operation
// fails. API: mock/workers/README.md.

import { DurableObject } from "cloudflare:workers";
import { handleFetch, runCron, via } from "./api.js";

const WORKER = "d1-do-control-plane";
const OAUTH_PROVIDER = "default";

/**
 * One lock, with fencing tokens. Durable Object input gates serialise the
 * calls, so each read-modify-write of storage is atomic. The token counter
 * survives releases and expiries, so tokens only grow.
 */
export class LockDO extends DurableObject {
  async #lease(now) {
    const lease = await this.ctx.storage.get("lease");
    return lease && lease.expires_at > now ? lease : null;
  }

  async acquire(name, holder, ttlMs) {
    const now = Date.now();
    const cur = await this.#lease(now);
    if (cur) return { acquired: false, holder: cur.holder, expires_at: cur.expires_at };
    const token = ((await this.ctx.storage.get("token")) ?? 0) + 1;
    const lease = { holder, token, expires_at: now + ttlMs };
    await this.ctx.storage.put({ token, lease });
    await this.ctx.storage.setAlarm(lease.expires_at);
    return { acquired: true, name, ...lease };
  }

  async release(holder, token) {
    const cur = await this.#lease(Date.now());
    if (!cur || cur.holder !== holder || cur.token !== token) {
      return { released: false, holder: cur?.holder ?? null, token: cur?.token ?? null };
    }
    await this.ctx.storage.delete("lease");
    await this.ctx.storage.deleteAlarm();
    return { released: true };
  }

  async current(name) {
    const cur = await this.#lease(Date.now());
    return cur ? { name, holder: cur.holder, token: cur.token, expires_at: cur.expires_at } : null;
  }

  /** Lease expiry: clear an expired holder (reads check expiry as well). */
  async alarm() {
    const lease = await this.ctx.storage.get("lease");
    if (!lease) return;
    if (lease.expires_at <= Date.now()) await this.ctx.storage.delete("lease");
    else await this.ctx.storage.setAlarm(lease.expires_at);
  }
}

/** One API key's fixed one-minute window, kept in memory and storage. */
export class RateLimiterDO extends DurableObject {
  async hit(limit) {
    const now = Date.now();
    const window = Math.floor(now / 60_000);
    const reset_at = (window + 1) * 60_000;
    this.state ??= (await this.ctx.storage.get("window")) ?? { window, count: 0 };
    if (this.state.window !== window) this.state = { window, count: 0 };
    if (this.state.count >= limit) return { allowed: false, count: this.state.count, reset_at };
    this.state.count += 1;
    await this.ctx.storage.put("window", this.state);
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(reset_at);
    return { allowed: true, count: this.state.count, reset_at };
  }

  /** A sliding window: at most `limit` admissions in any `windowMs`, kept in memory (one
   * instance per key runs one call at a time, so the check and the admission are atomic). */
  slide(limit, windowMs) {
    const now = Date.now();
    this.log = (this.log ?? []).filter((t) => t > now - windowMs);
    if (this.log.length >= limit) return { admitted: false, count: this.log.length };
    this.log.push(now);
    return { admitted: true, count: this.log.length };
  }

  /** The window is over: forget it. */
  async alarm() {
    this.state = undefined;
    await this.ctx.storage.deleteAll();
  }
}

function parseJson(text) {
  return text === null || text === undefined ? null : JSON.parse(text);
}

function effectiveStatus(row, now) {
  return row.status === "leased" && row.lease_until <= now ? "pending" : row.status;
}

function backend(env) {
  const db = env.DB;
  const d1 = (fn) => via("d1", fn);
  const lock = (name) => env.LOCKS.get(env.LOCKS.idFromName(name));

  return {
    lockAcquire: (name, holder, ttlMs) => via("do", () => lock(name).acquire(name, holder, ttlMs)),
    lockRelease: (name, holder, token) => via("do", () => lock(name).release(holder, token)),
    lockGet: (name) => via("do", () => lock(name).current(name)),

    enqueue: (id, payload, now) =>
      d1(async () => {
        const r = await db
          .prepare("INSERT INTO tasks (id, payload, enqueued_at) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING")
          .bind(id, JSON.stringify(payload), now)
          .run();
        return r.meta.changes === 1;
      }),

    // One statement: picking the oldest due task and leasing it is atomic.
    claim: (consumer, leaseMs, now) =>
      d1(async () => {
        const row = await db
          .prepare(
            `UPDATE tasks SET status = 'leased', consumer = ?1, lease_until = ?2, attempts = attempts + 1
             WHERE seq = (SELECT seq FROM tasks
                          WHERE status = 'pending' OR (status = 'leased' AND lease_until <= ?3)
                          ORDER BY seq LIMIT 1)
             RETURNING id, payload, lease_until, attempts`,
          )
          .bind(consumer, now + leaseMs, now)
          .first();
        return row
          ? { id: row.id, payload: parseJson(row.payload), lease_until: row.lease_until, attempts: row.attempts }
          : null;
      }),

    complete: (id, consumer, result, now) =>
      d1(async () => {
        const r = await db
          .prepare(
            `UPDATE tasks SET status = 'done', result = ?1, completed_at = ?2, lease_until = NULL
             WHERE id = ?3 AND status = 'leased' AND consumer = ?4 AND lease_until > ?2`,
          )
          .bind(JSON.stringify(result), now, id, consumer)
          .run();
        if (r.meta.changes === 1) return { completed: true };
        const row = await db.prepare("SELECT status, lease_until FROM tasks WHERE id = ?1").bind(id).first();
        return row ? { completed: false, status: effectiveStatus(row, now) } : null;
      }),

    result: (id, now) =>
      d1(async () => {
        const row = await db
          .prepare("SELECT id, status, lease_until, result, attempts FROM tasks WHERE id = ?1")
          .bind(id)
          .first();
        if (!row) return null;
        return { id: row.id, status: effectiveStatus(row, now), result: parseJson(row.result), attempts: row.attempts };
      }),

    stats: (now) =>
      d1(async () => {
        const { results } = await db
          .prepare(
            `SELECT CASE WHEN status = 'leased' AND lease_until <= ?1 THEN 'pending' ELSE status END AS s,
                    COUNT(*) AS n
             FROM tasks GROUP BY s`,
          )
          .bind(now)
          .all();
        const counts = { pending: 0, leased: 0, done: 0 };
        for (const { s, n } of results) counts[s] = n;
        return counts;
      }),

    webhook: (key, now) =>
      d1(async () => {
        const r = await db
          .prepare("INSERT INTO idempotency_keys (scope, key, created_at) VALUES ('webhook', ?1, ?2) ON CONFLICT DO NOTHING")
          .bind(key, now)
          .run();
        return r.meta.changes === 1;
      }),

    webhookCount: () =>
      d1(async () => {
        const row = await db.prepare("SELECT COUNT(*) AS n FROM idempotency_keys WHERE scope = 'webhook'").first();
        return row.n;
      }),

    // The key is UNIQUE and the effect is written in the same transaction (a D1 batch):
    // only the copy whose insert won applies it, and never without the key.
    idemApply: (key, now) =>
      d1(async () => {
        const op = crypto.randomUUID();
        const [ins] = await db.batch([
          db
            .prepare("INSERT INTO idem_ops (key, op, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING")
            .bind(key, op, now),
          db
            .prepare(
              `INSERT INTO idem_effects (key, effects)
               SELECT ?1, 1 WHERE EXISTS (SELECT 1 FROM idem_ops WHERE key = ?1 AND op = ?2)
               ON CONFLICT (key) DO UPDATE SET effects = effects + 1`,
            )
            .bind(key, op),
        ]);
        return ins.meta.changes === 1;
      }),

    idemEffects: (key) =>
      d1(async () => {
        const row = await db.prepare("SELECT effects FROM idem_effects WHERE key = ?1").bind(key).first();
        return row?.effects ?? 0;
      }),

    rateHit: (key, limit, windowMs) =>
      via("do", () => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`slide:${key}`)).slide(limit, windowMs)),

    rateLimit: (apiKey, limit) =>
      via("do", () => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(apiKey)).hit(limit)),

    // Fails open: any KV error serves the origin's value, uncached.
    async cacheGet(key, ttlS, originFn) {
      try {
        const cached = await env.CACHE.get(key);
        if (cached !== null) return { value: cached, cache: "hit" };
      } catch (e) {
        console.error(`${WORKER}: cache read failed, bypassing: ${e?.message ?? e}`);
        return { value: originFn(key), cache: "bypass" };
      }
      const value = originFn(key);
      try {
        await env.CACHE.put(key, value, { expirationTtl: ttlS });
        return { value, cache: "miss" };
      } catch (e) {
        console.error(`${WORKER}: cache write failed, bypassing: ${e?.message ?? e}`);
        return { value, cache: "bypass" };
      }
    },

    cronStatus: () =>
      d1(async () => {
        const row = await db.prepare("SELECT last_run, runs FROM cron_state WHERE id = 1").first();
        return { last_run: row?.last_run ?? null, runs: row?.runs ?? 0 };
      }),

    // Read the current token (a real Worker would present it to the
    // provider), then write the next one unless another run rotated first.
    rotateToken: (scheduled) =>
      d1(async () => {
        const cur = await db
          .prepare("SELECT generation FROM oauth_tokens WHERE provider = ?1")
          .bind(OAUTH_PROVIDER)
          .first();
        const generation = (cur?.generation ?? 0) + 1;
        await db
          .prepare(
            `INSERT INTO oauth_tokens (provider, refresh_token, generation, rotated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (provider) DO UPDATE SET refresh_token = excluded.refresh_token,
               generation = excluded.generation, rotated_at = excluded.rotated_at
             WHERE oauth_tokens.generation = ?3 - 1`,
          )
          .bind(OAUTH_PROVIDER, `rt-${generation}-${crypto.randomUUID()}`, generation, scheduled)
          .run();
      }),

    recordRun: (scheduled) =>
      d1(() => db.prepare("UPDATE cron_state SET last_run = ?1, runs = runs + 1 WHERE id = 1").bind(scheduled).run()),
  };
}

export default {
  fetch(request, env) {
    return handleFetch(request, env, backend(env), WORKER);
  },
  scheduled(controller, env) {
    return runCron(controller, env, backend(env), WORKER);
  },
};
