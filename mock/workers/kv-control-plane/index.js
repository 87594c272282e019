// Reference Worker "kv-control-plane": the whole control plane in Workers KV,
// written the way teams write it before migrating — every read-modify-write
// is a get followed by a put (not atomic), locks are KV keys with a TTL,
// the queue is found by `list`. API and key layout: mock/workers/README.md.
//
// When KV writes fail (the free plan's 1,000 puts a day), so do the cron
// run, queue claims, locks, enqueues, webhooks and the rate limiter.
//
// KV refuses a second write to one key within a second (429). So no request
// and no cron run writes a key twice, and no key is rewritten on a path that
// normal traffic takes faster than once a second: a task key is written once
// (enqueue), each claim writes the lease key, completion writes a done key;
// webhooks and rate-limited calls each write a key of their own and count by
// listing. What remains is what KV really cannot do: a lock name granted
// twice within a second, or one task claimed twice within a second (leases
// under 1 s, or two consumers racing), gets KV's 429 — a 503.

import { handleFetch, runCron, via } from "./api.js";

const WORKER = "kv-control-plane";
const TASK = "queue:task:";
const LEASE = "queue:lease:";
const DONE = "queue:done:";
const IDEM = "idem:webhook:";
const IDEM_OP = "idem:op:";
const IDEM_EFFECT = "idem:effect:";
/** KV refuses an expirationTtl under 60 s: round TTLs up to whole seconds, at least 60. */
const ttlSeconds = (ms) => Math.max(60, Math.ceil(ms / 1000));

/** The KV binding with every failure tagged as a KV backend failure. */
function kvStore(ns) {
  return {
    get: (key) => via("kv", () => ns.get(key)),
    getJson: (key) => via("kv", () => ns.get(key, "json")),
    put: (key, value, opts) => via("kv", () => ns.put(key, value, opts)),
    delete: (key) => via("kv", () => ns.delete(key)),
    /** Every key under `prefix` with its metadata, across all pages. */
    listAll: (prefix) =>
      via("kv", async () => {
        const keys = [];
        let cursor;
        do {
          const page = await ns.list({ prefix, cursor });
          keys.push(...page.keys);
          cursor = page.list_complete ? undefined : page.cursor;
        } while (cursor);
        return keys;
      }),
  };
}

function backend(env) {
  const kv = kvStore(env.KV);

  async function heldLock(name, now) {
    const cur = await kv.getJson(`lock:${name}`);
    return cur && cur.expires_at > now ? cur : null;
  }

  function effectiveStatus(isDone, lease, now) {
    if (isDone) return "done";
    return lease && lease.lease_until > now ? "leased" : "pending";
  }

  return {
    async lockAcquire(name, holder, ttlMs, now) {
      const cur = await heldLock(name, now);
      if (cur) return { acquired: false, holder: cur.holder, expires_at: cur.expires_at };
      const last = Number(await kv.get(`locktoken:${name}`)) || 0;
      const token = last + 1;
      await kv.put(`locktoken:${name}`, String(token));
      const expires_at = now + ttlMs;
      await kv.put(`lock:${name}`, JSON.stringify({ holder, token, expires_at }), {
        expirationTtl: ttlSeconds(ttlMs),
      });
      return { acquired: true, name, holder, token, expires_at };
    },

    async lockRelease(name, holder, token, now) {
      const cur = await heldLock(name, now);
      if (!cur || cur.holder !== holder || cur.token !== token) {
        return { released: false, holder: cur?.holder ?? null, token: cur?.token ?? null };
      }
      await kv.delete(`lock:${name}`);
      return { released: true };
    },

    async lockGet(name, now) {
      const cur = await heldLock(name, now);
      return cur ? { name, holder: cur.holder, token: cur.token, expires_at: cur.expires_at } : null;
    },

    async enqueue(id, payload, now) {
      if ((await kv.get(TASK + id)) !== null) return false;
      const task = { id, payload, enqueued_at: now };
      await kv.put(TASK + id, JSON.stringify(task), { metadata: { enqueued_at: now } });
      return true;
    },

    async claim(consumer, leaseMs, now) {
      const tasks = await kv.listAll(TASK);
      const leases = new Map((await kv.listAll(LEASE)).map((k) => [k.name.slice(LEASE.length), k.metadata]));
      const done = new Set((await kv.listAll(DONE)).map((k) => k.name.slice(DONE.length)));
      const due = tasks
        .map((k) => ({ id: k.name.slice(TASK.length), meta: k.metadata ?? {} }))
        .filter(({ id }) => !done.has(id) && !(leases.get(id)?.lease_until > now))
        .sort((a, b) => (a.meta.enqueued_at ?? 0) - (b.meta.enqueued_at ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (const { id } of due) {
        // The listings may be stale: read the task, its completion and its lease.
        const task = await kv.getJson(TASK + id);
        if (!task || (await kv.get(DONE + id)) !== null) continue;
        const prev = await kv.getJson(LEASE + id);
        if (prev && prev.lease_until > now) continue;
        const lease_until = now + leaseMs;
        const attempts = (prev?.attempts ?? 0) + 1;
        const lease = { consumer, lease_until, attempts };
        // No TTL: the lease key also keeps the attempt count; an expired lease is just old.
        await kv.put(LEASE + id, JSON.stringify(lease), { metadata: lease });
        return { id, payload: task.payload, lease_until, attempts };
      }
      return null;
    },

    async complete(id, consumer, result, now) {
      const task = await kv.getJson(TASK + id);
      if (!task) return null;
      if ((await kv.get(DONE + id)) !== null) return { completed: false, status: "done" };
      const lease = await kv.getJson(LEASE + id);
      const status = effectiveStatus(false, lease, now);
      if (status !== "leased" || lease.consumer !== consumer) return { completed: false, status };
      await kv.put(DONE + id, JSON.stringify({ result, attempts: lease.attempts, done_at: now }));
      return { completed: true };
    },

    async result(id, now) {
      const task = await kv.getJson(TASK + id);
      if (!task) return null;
      const done = await kv.getJson(DONE + id);
      if (done) return { id, status: "done", result: done.result ?? null, attempts: done.attempts };
      const lease = await kv.getJson(LEASE + id);
      return { id, status: effectiveStatus(false, lease, now), result: null, attempts: lease?.attempts ?? 0 };
    },

    async stats(now) {
      const tasks = await kv.listAll(TASK);
      const leases = new Map((await kv.listAll(LEASE)).map((k) => [k.name.slice(LEASE.length), k.metadata]));
      const done = new Set((await kv.listAll(DONE)).map((k) => k.name.slice(DONE.length)));
      const counts = { pending: 0, leased: 0, done: 0 };
      for (const k of tasks) {
        const id = k.name.slice(TASK.length);
        counts[effectiveStatus(done.has(id), leases.get(id), now)] += 1;
      }
      return counts;
    },

    async webhook(key, now) {
      // One key per delivery, no TTL (dedupe is forever, as in D1); the count lists them.
      if ((await kv.get(IDEM + key)) !== null) return false;
      await kv.put(IDEM + key, JSON.stringify({ at: now }));
      return true;
    },

    async webhookCount() {
      return (await kv.listAll(IDEM)).length;
    },

    async rateLimit(apiKey, limit, now) {
      // One key per allowed call, counted by listing the window's prefix: a
      // get-then-put counter would write one key per call, faster than KV allows.
      const window = Math.floor(now / 60_000);
      const reset_at = (window + 1) * 60_000;
      const prefix = `ratelimit:${apiKey}:${window}:`;
      const count = (await kv.listAll(prefix)).length;
      if (count >= limit) return { allowed: false, count, reset_at };
      await kv.put(prefix + `${now}-${crypto.randomUUID()}`, "1", { expirationTtl: 120 });
      return { allowed: true, count: count + 1, reset_at };
    },

    async idemApply(key, now) {
      // Read, apply, then mark: two copies that both read before either marks both apply
      // (and a mark that fails after the effect lets the retry apply it again).
      if ((await kv.get(IDEM_OP + key)) !== null) return false;
      await kv.put(`${IDEM_EFFECT}${key}:${now}-${crypto.randomUUID()}`, "1");
      await kv.put(IDEM_OP + key, JSON.stringify({ at: now }));
      return true;
    },

    async idemEffects(key) {
      return (await kv.listAll(`${IDEM_EFFECT}${key}:`)).length;
    },

    async rateHit(key, limit, windowMs, now) {
      // A fixed-window counter, read then written: concurrent hits read the same count, and
      // a counter write that fails (the daily write limit, KV's one write per second per key)
      // lets the call through anyway — it fails open without anyone having decided so.
      const counter = `rl:${key}:${Math.floor(now / windowMs)}`;
      const count = Number((await kv.get(counter)) ?? 0);
      if (count >= limit) return { admitted: false, count };
      try {
        await kv.put(counter, String(count + 1), { expirationTtl: ttlSeconds(2 * windowMs) });
      } catch (e) {
        console.error(`${WORKER}: rate limit counter not written, admitting: ${e?.message ?? e}`);
      }
      return { admitted: true, count: count + 1 };
    },

    async cacheGet(key, ttlS, originFn) {
      const cached = await kv.get(`cache:${key}`);
      if (cached !== null) return { value: cached, cache: "hit" };
      const value = originFn(key);
      await kv.put(`cache:${key}`, value, { expirationTtl: ttlS });
      return { value, cache: "miss" };
    },

    async cronStatus() {
      const s = await kv.getJson("cron:state");
      return { last_run: s?.last_run ?? null, runs: s?.runs ?? 0 };
    },

    async rotateToken(scheduled) {
      const cur = await kv.getJson("oauth:refresh_token");
      const generation = (cur?.generation ?? 0) + 1;
      const token = `rt-${generation}-${crypto.randomUUID()}`;
      await kv.put("oauth:refresh_token", JSON.stringify({ token, generation, rotated_at: scheduled }));
    },

    async recordRun(scheduled) {
      const s = await kv.getJson("cron:state");
      await kv.put("cron:state", JSON.stringify({ last_run: scheduled, runs: (s?.runs ?? 0) + 1 }));
    },
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
