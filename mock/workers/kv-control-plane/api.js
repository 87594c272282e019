// The HTTP API and cron run shared by both reference Workers (documented in
// mock/workers/README.md). This file is identical in kv-control-plane/ and
// d1-do-control-plane/ (a test checks it): each Worker only supplies a
// backend, the object that keeps the control plane somewhere.
//
// Owns: routing, request validation, status codes, error bodies, the origin
// function, and the order of the cron run. Does not own: any state.

/** A backend (KV, D1, DO) failed: answered as 503 with its name. */
export class BackendError extends Error {
  constructor(backend, cause) {
    super(String(cause?.message ?? cause));
    this.backend = backend;
  }
}

/** Run `fn`, turning anything it throws into a BackendError of `backend`. */
export async function via(backend, fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof BackendError) throw e;
    throw new BackendError(backend, e);
  }
}

/** A client mistake: answered with `status` and `{"error": message}`. */
class ClientError extends Error {
  constructor(status, message, headers = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

const MAX_NAME = 256;
const MAX_DURATION_MS = 86_400_000;
/** The lock the cron run takes, and how long it may hold it. */
export const CRON_LOCK = "cron";
const CRON_LOCK_TTL_MS = 60_000;
const CRON_LEASE_MS = 60_000;

function json(body, status = 200, headers = {}) {
  return Response.json(body, { status, headers });
}

function intVar(env, name, fallback, min) {
  const v = Number.parseInt(env?.[name] ?? "", 10);
  return Number.isFinite(v) && v >= min ? v : fallback;
}

/** The deterministic origin of the cached read: "origin:<key>:<fnv1a32 hex>". */
export function origin(key) {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(key)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `origin:${key}:${h.toString(16).padStart(8, "0")}`;
}

function name(value, what) {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_NAME) {
    throw new ClientError(400, `'${what}' must be a non-empty string of at most ${MAX_NAME} characters`);
  }
  return value;
}

function duration(value, what) {
  if (!Number.isInteger(value) || value < 1 || value > MAX_DURATION_MS) {
    throw new ClientError(400, `'${what}' must be an integer number of milliseconds in 1..=${MAX_DURATION_MS}`);
  }
  return value;
}

function segment(raw, what) {
  let decoded;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new ClientError(400, `invalid percent-encoding in ${what} '${raw}'`);
  }
  return name(decoded, what);
}

function intParam(url, param, fallback, min, max) {
  const raw = url.searchParams.get(param);
  if (raw === null) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new ClientError(400, `query parameter '${param}' must be an integer in ${min}..=${max}`);
  }
  return v;
}

function header(request, h) {
  const v = request.headers.get(h);
  if (v === null || v === "") throw new ClientError(400, `missing header '${h}'`);
  return name(v, `header ${h}`);
}

async function body(request) {
  let b;
  try {
    b = await request.json();
  } catch {
    throw new ClientError(400, "the request body must be a JSON object");
  }
  if (b === null || typeof b !== "object" || Array.isArray(b)) {
    throw new ClientError(400, "the request body must be a JSON object");
  }
  return b;
}

function method(request, allowed) {
  if (request.method !== allowed) {
    throw new ClientError(405, `use ${allowed} for this path`, { allow: allowed });
  }
}

async function route(request, env, backend, workerName) {
  const url = new URL(request.url);
  const parts = url.pathname.split("/").slice(1);
  const path = url.pathname;
  const now = Date.now();

  if (path === "/health") {
    method(request, "GET");
    return json({ ok: true, worker: workerName });
  }
  if (path === "/cron/status") {
    method(request, "GET");
    return json(await backend.cronStatus());
  }

  if (parts[0] === "locks" && (parts.length === 2 || parts.length === 3)) {
    const lock = segment(parts[1], "lock name");
    if (parts.length === 2) {
      method(request, "GET");
      const held = await backend.lockGet(lock, now);
      if (!held) return json({ error: `lock '${lock}' is not held` }, 404);
      return json(held);
    }
    if (parts[2] === "acquire") {
      method(request, "POST");
      const b = await body(request);
      const r = await backend.lockAcquire(lock, name(b.holder, "holder"), duration(b.ttl_ms, "ttl_ms"), now);
      if (r.acquired) return json(r);
      return json({ ...r, error: `lock '${lock}' is held by '${r.holder}'` }, 409);
    }
    if (parts[2] === "release") {
      method(request, "POST");
      const b = await body(request);
      if (!Number.isInteger(b.token)) throw new ClientError(400, "'token' must be an integer");
      const r = await backend.lockRelease(lock, name(b.holder, "holder"), b.token, now);
      if (r.released) return json(r);
      return json({ ...r, error: `lock '${lock}' is not held by '${b.holder}' with token ${b.token}` }, 409);
    }
  }

  if (parts[0] === "queue") {
    if (path === "/queue/enqueue") {
      method(request, "POST");
      const b = await body(request);
      const id = name(b.id, "id");
      const created = await backend.enqueue(id, b.payload ?? null, now);
      return created
        ? json({ id, enqueued: true, duplicate: false }, 201)
        : json({ id, enqueued: false, duplicate: true });
    }
    if (path === "/queue/claim") {
      method(request, "POST");
      const b = await body(request);
      const task = await backend.claim(name(b.consumer, "consumer"), duration(b.lease_ms, "lease_ms"), now);
      return task ? json({ task }) : new Response(null, { status: 204 });
    }
    if (path === "/queue/complete") {
      method(request, "POST");
      const b = await body(request);
      const id = name(b.id, "id");
      const consumer = name(b.consumer, "consumer");
      const r = await backend.complete(id, consumer, b.result ?? null, now);
      if (r === null) return json({ error: `no task '${id}'` }, 404);
      if (r.completed) return json({ completed: true });
      return json(
        { completed: false, status: r.status, error: `task '${id}' is not leased to '${consumer}' (status ${r.status})` },
        409,
      );
    }
    if (parts[1] === "result" && parts.length === 3) {
      method(request, "GET");
      const id = segment(parts[2], "task id");
      const r = await backend.result(id, now);
      return r ? json(r) : json({ error: `no task '${id}'` }, 404);
    }
    if (path === "/queue/stats") {
      method(request, "GET");
      return json(await backend.stats(now));
    }
  }

  if (path === "/webhook") {
    method(request, "POST");
    const key = header(request, "idempotency-key");
    const first = await backend.webhook(key, now);
    return json({ processed: first, duplicate: !first });
  }
  if (path === "/webhook/count") {
    method(request, "GET");
    return json({ count: await backend.webhookCount() });
  }

  if (path === "/api/limited") {
    method(request, "GET");
    const key = header(request, "x-api-key");
    const limit = intVar(env, "RATE_LIMIT", 10, 1);
    const r = await backend.rateLimit(key, limit, now);
    if (r.allowed) {
      return json({ ok: true, key, limit, remaining: Math.max(0, limit - r.count), reset_at: r.reset_at });
    }
    const retry = String(Math.max(1, Math.ceil((r.reset_at - now) / 1000)));
    return json({ error: `rate limit of ${limit} per minute exceeded for this key`, limit, reset_at: r.reset_at }, 429, {
      "retry-after": retry,
    });
  }

  if (parts[0] === "idem" && parts.length === 2) {
    const key = segment(parts[1], "idempotency key");
    if (request.method === "GET") {
      return json({ key, effects: await backend.idemEffects(key) });
    }
    method(request, "POST");
    const applied = await backend.idemApply(key, now);
    return json({ key, applied, duplicate: !applied });
  }

  if (parts[0] === "ratelimit" && parts.length === 2) {
    method(request, "POST");
    const key = segment(parts[1], "rate limit key");
    const limit = intParam(url, "limit", 10, 1, 1_000_000);
    const windowMs = intParam(url, "window_ms", 1000, 1, 86_400_000);
    const r = await backend.rateHit(key, limit, windowMs, now);
    if (r.admitted) return json({ admitted: true, key, limit, window_ms: windowMs, count: r.count });
    return json({ admitted: false, error: `rate limit of ${limit} per ${windowMs} ms exceeded for this key`, limit }, 429, {
      "retry-after": String(Math.max(1, Math.ceil(windowMs / 1000))),
    });
  }

  if (parts[0] === "cache" && parts.length === 2) {
    method(request, "GET");
    const key = segment(parts[1], "cache key");
    const ttl = intVar(env, "CACHE_TTL_S", 300, 60);
    const r = await backend.cacheGet(key, ttl, origin);
    return json({ key, value: r.value, cache: r.cache });
  }

  return json({ error: `no endpoint ${request.method} ${path}` }, 404);
}

/** The fetch handler: routes to `backend`, maps errors to status codes. */
export async function handleFetch(request, env, backend, workerName) {
  try {
    return await route(request, env, backend, workerName);
  } catch (e) {
    if (e instanceof ClientError) return json({ error: e.message }, e.status, e.headers);
    if (e instanceof BackendError) {
      console.error(`${workerName}: ${e.backend} failed: ${e.message}`);
      return json({ error: e.message, backend: e.backend }, 503);
    }
    console.error(`${workerName}: bug: ${e?.stack ?? e}`);
    return json({ error: String(e?.message ?? e) }, 500);
  }
}

/**
 * One cron run: lock, drain up to CRON_BATCH due tasks, rotate the OAuth
 * token, record the run, unlock. Throws when a backend fails, so that the
 * runtime reports the run as an exception and nothing is recorded.
 */
export async function runCron(controller, env, backend, workerName) {
  const scheduled = controller.scheduledTime;
  const holder = `cron@${scheduled}`;
  const lock = await backend.lockAcquire(CRON_LOCK, holder, CRON_LOCK_TTL_MS, Date.now());
  if (!lock.acquired) {
    console.log(`${workerName}: cron ${scheduled} skipped: lock held by ${lock.holder}`);
    return;
  }
  try {
    const batch = intVar(env, "CRON_BATCH", 10, 0);
    let done = 0;
    for (let i = 0; i < batch; i++) {
      const task = await backend.claim("cron", CRON_LEASE_MS, Date.now());
      if (!task) break;
      const r = await backend.complete(
        task.id,
        "cron",
        { processed_by: "cron", scheduled_time: scheduled },
        Date.now(),
      );
      if (r?.completed) done++;
    }
    await backend.rotateToken(scheduled);
    await backend.recordRun(scheduled);
    console.log(`${workerName}: cron ${scheduled} done, ${done} tasks completed`);
  } finally {
    try {
      await backend.lockRelease(CRON_LOCK, holder, lock.token, Date.now());
    } catch (e) {
      // The lease expires by itself; the run's own error matters more.
      console.error(`${workerName}: releasing the cron lock failed: ${e?.message ?? e}`);
    }
  }
}
