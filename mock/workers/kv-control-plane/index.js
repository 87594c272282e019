// Reference Worker "kv-control-plane": the whole control plane in Workers KV,
// written the way teams write it before migrating — every read-modify-write
// is a get followed by a put (not atomic), locks are KV keys with a TTL,
// the queue is found by `list`. API and key layout: mock/workers/README.md.
//
// When KV writes fail (the free plan's 1,000 puts a day), so do the cron
// run, queue claims, locks, enqueues, webhooks and the rate limiter.

import { handleFetch, runCron, via } from "./api.js";

const WORKER = "kv-control-plane";
const TASK = "queue:task:";
const LEASE = "queue:lease:";
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

  function effectiveStatus(task, lease, now) {
    if (task.status === "done") return "done";
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
      const task = { id, payload, enqueued_at: now, status: "pending", attempts: 0, result: null };
      await kv.put(TASK + id, JSON.stringify(task), { metadata: { enqueued_at: now, done: false } });
      return true;
    },

    async claim(consumer, leaseMs, now) {
      const tasks = await kv.listAll(TASK);
      const leases = new Map((await kv.listAll(LEASE)).map((k) => [k.name.slice(LEASE.length), k.metadata]));
      const due = tasks
        .map((k) => ({ id: k.name.slice(TASK.length), meta: k.metadata ?? {} }))
        .filter(({ id, meta }) => !meta.done && !(leases.get(id)?.lease_until > now))
        .sort((a, b) => (a.meta.enqueued_at ?? 0) - (b.meta.enqueued_at ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (const { id } of due) {
        const task = await kv.getJson(TASK + id);
        if (!task || task.status === "done") continue; // the listing was stale
        const lease_until = now + leaseMs;
        const lease = { consumer, lease_until };
        await kv.put(LEASE + id, JSON.stringify(lease), { metadata: lease, expirationTtl: ttlSeconds(leaseMs) });
        task.attempts += 1;
        await kv.put(TASK + id, JSON.stringify(task), { metadata: { enqueued_at: task.enqueued_at, done: false } });
        return { id, payload: task.payload, lease_until, attempts: task.attempts };
      }
      return null;
    },

    async complete(id, consumer, result, now) {
      const task = await kv.getJson(TASK + id);
      if (!task) return null;
      const lease = await kv.getJson(LEASE + id);
      const status = effectiveStatus(task, lease, now);
      if (status !== "leased" || lease.consumer !== consumer) return { completed: false, status };
      task.status = "done";
      task.result = result;
      await kv.put(TASK + id, JSON.stringify(task), { metadata: { enqueued_at: task.enqueued_at, done: true } });
      await kv.delete(LEASE + id);
      return { completed: true };
    },

    async result(id, now) {
      const task = await kv.getJson(TASK + id);
      if (!task) return null;
      const lease = await kv.getJson(LEASE + id);
      return { id, status: effectiveStatus(task, lease, now), result: task.result ?? null, attempts: task.attempts };
    },

    async stats(now) {
      const tasks = await kv.listAll(TASK);
      const leases = new Map((await kv.listAll(LEASE)).map((k) => [k.name.slice(LEASE.length), k.metadata]));
      const counts = { pending: 0, leased: 0, done: 0 };
      for (const k of tasks) {
        const id = k.name.slice(TASK.length);
        counts[effectiveStatus({ status: k.metadata?.done ? "done" : "pending" }, leases.get(id), now)] += 1;
      }
      return counts;
    },

    async webhook(key, now) {
      const idem = `idem:webhook:${key}`;
      if ((await kv.get(idem)) !== null) return false;
      await kv.put(idem, JSON.stringify({ at: now }), { expirationTtl: 86_400 });
      const count = Number(await kv.get("webhook:count")) || 0;
      await kv.put("webhook:count", String(count + 1));
      return true;
    },

    async webhookCount() {
      return Number(await kv.get("webhook:count")) || 0;
    },

    async rateLimit(apiKey, limit, now) {
      const window = Math.floor(now / 60_000);
      const reset_at = (window + 1) * 60_000;
      const key = `ratelimit:${apiKey}:${window}`;
      const count = Number(await kv.get(key)) || 0;
      if (count >= limit) return { allowed: false, count, reset_at };
      await kv.put(key, String(count + 1), { expirationTtl: 120 });
      return { allowed: true, count: count + 1, reset_at };
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
