// kvchaos chaos shim: the entry point of a canary build (`kvchaos canary build`).
//
// It imports the Worker's own entry point unchanged and hands every handler an
// `env` whose KV bindings are wrapped: while a fault schedule pushed by kvchaos
// is active, matching KV operations fail (or slow down) the way Workers KV
// fails in production; otherwise every call goes straight to the real binding.
//
// Control routes (all under /__kvchaos/, all POST, all authenticated):
//   schedule   install a fault timeline {id, faults:[...], expires_in_ms, max_writes}
//   halt       clear everything at once
//   stats      what was injected, per fault, and the real KV writes made
//   scheduled  run the Worker's scheduled handler {cron, scheduled_time}
// A request is authenticated by three headers: x-kvchaos-timestamp (ms since
// the epoch, within 60 s of the shim's clock), x-kvchaos-nonce (never reused)
// and x-kvchaos-signature, the hex HMAC-SHA256 under the secret in the
// Worker's env var named below of "METHOD\nPATH\nTIMESTAMP\nNONCE\nBODY".
// Without that secret every control route answers 503: no control at all.
//
// Every response carries x-kvchaos-shim: script=NAME; version=ID|none;
// schedule=ID|none, so kvchaos can tell the shim answered (not production, not
// a fallback version). The version id is the `id` of the Worker's
// version_metadata binding (the build adds one when the config has none).
//
// The schedule lives in the isolate that received it; it ends by itself at its
// expiry, so faults stop even if kvchaos dies without sending halt.
//
// Placeholders filled in by `kvchaos canary build`:
import * as user from "__KVCHAOS_USER_MAIN__";
export * from "__KVCHAOS_USER_MAIN__";

const SCRIPT = "__KVCHAOS_SCRIPT__";
const KV_BINDINGS = new Set(__KVCHAOS_KV_BINDINGS__);
const SECRET_VAR = "__KVCHAOS_SECRET_VAR__";
const VERSION_BINDING = "__KVCHAOS_VERSION_BINDING__";
const CONTROL = "/__kvchaos/";
const MAX_SKEW_MS = 60_000;
const MAX_BODY = 256 * 1024;
const MAX_FAULTS = 1000;
const MAX_NONCES = 10_000;
// Longest a `hang` holds an operation: past it the operation fails as a lost connection.
const HANG_MS = 30_000;
// Values remembered per isolate for stale reads, and for how long.
const MAX_REMEMBERED = 1000;

let schedule = null;
const nonces = new Map();
const remembered = new Map();

function now() {
  return Date.now();
}

function active() {
  if (schedule && now() >= schedule.expires_at) schedule = null;
  return schedule;
}

// --- faults ---------------------------------------------------------------

function matching(s, op, binding, key) {
  const t = now() - s.started_at;
  return s.faults.filter(
    (f) =>
      t >= f.at_ms &&
      (f.until_ms == null || t < f.until_ms) &&
      (f.ops.length === 0 || f.ops.includes(op)) &&
      (f.namespace == null || f.namespace === binding) &&
      (key === undefined || key.startsWith(f.prefix)) &&
      Math.random() < f.p,
  );
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The key a bulk `get([...])` is matched on: the first that an active fault's prefix covers
 * (one operation, failed or delayed as a whole), else the first key. */
function bulkKey(binding, keys) {
  const s = active();
  const all = keys.map(String);
  const hit = s && all.find((k) => s.faults.some((f) => (f.namespace == null || f.namespace === binding) && k.startsWith(f.prefix)));
  return hit ?? all[0] ?? "";
}

/** Applies the first fault that hits; returns a stale value to answer with, if any (never
 * with `noStale`: a bulk read, whose answer is a Map, or one asking for bytes or a stream). */
async function inject(op, binding, key, noStale = false) {
  const s = active();
  if (!s) return undefined;
  for (const f of matching(s, op, binding, key)) {
    s.injected[f.index] = (s.injected[f.index] ?? 0) + 1;
    const METHOD = op === "get" ? "GET" : op.toUpperCase();
    switch (f.kind) {
      case "daily-limit":
        throw new Error(`KV ${op}() limit exceeded for the day.`);
      case "rate-limit":
        throw new Error(`KV ${METHOD} failed: 429 Too Many Requests`);
      case "error":
        throw new Error(`KV ${METHOD} failed: ${f.status ?? 500} Internal Server Error`);
      case "latency":
        await sleep((f.latency_ms ?? 0) + Math.random() * (f.jitter_ms ?? 0));
        return undefined;
      case "hang":
        await sleep(Math.max(0, Math.min(HANG_MS, s.expires_at - now())));
        throw new Error("Network connection lost.");
      case "reset":
        throw new Error("Network connection lost.");
      case "stale-reads": {
        const old = op === "get" && !noStale ? staleValue(binding, key, f.lag_ms ?? 60_000) : undefined;
        if (old !== undefined) return old;
        s.injected[f.index] -= 1; // nothing older is known here: the read is not stale
        return undefined;
      }
    }
  }
  return undefined;
}

function remember(binding, key, value) {
  if (typeof value !== "string") return;
  const k = `${binding}\u0000${key}`;
  const list = remembered.get(k) ?? [];
  list.push({ at: now(), value });
  if (list.length > 4) list.shift();
  remembered.delete(k);
  remembered.set(k, list);
  if (remembered.size > MAX_REMEMBERED) remembered.delete(remembered.keys().next().value);
}

function staleValue(binding, key, lag) {
  const list = remembered.get(`${binding}\u0000${key}`);
  if (!list || list.length < 2) return undefined;
  const cutoff = now() - lag;
  const older = list.filter((e) => e.at <= cutoff);
  const newest = list[list.length - 1];
  const pick = older.length ? older[older.length - 1] : list[0];
  return pick === newest ? undefined : { value: pick.value };
}

function countWrite() {
  const s = active();
  if (!s) return;
  if (s.max_writes != null && s.writes >= s.max_writes) {
    s.capped += 1;
    throw new Error(
      `kvchaos shim: write cap reached (${s.max_writes} real KV writes during this run)`,
    );
  }
  s.writes += 1;
}

// The value type a get asks for: `get(k, "json")` or `get(k, { type: "json" })`.
const readType = (options) => (typeof options === "string" ? options : options?.type) ?? "text";

/** Faults for one get; a stale value (kept as text) only where the read asks for text or JSON,
 * decoded as asked; `null` when the read goes to the real binding. */
async function injectRead(binding, key, options) {
  const type = readType(options);
  const staleable = !Array.isArray(key) && (type === "text" || type === "json");
  const stale = Array.isArray(key)
    ? await inject("get", binding, bulkKey(binding, key), true)
    : await inject("get", binding, String(key), !staleable);
  if (!stale) return null;
  if (type === "text") return { value: stale.value };
  try {
    return { value: JSON.parse(stale.value) };
  } catch {
    return null; // the older value is not JSON: read the real one
  }
}

function wrapKv(binding, kv) {
  return {
    async get(key, options) {
      const stale = await injectRead(binding, key, options);
      if (stale) return stale.value;
      const v = await kv.get(key, options);
      if (!Array.isArray(key) && readType(options) === "text") remember(binding, String(key), v);
      return v;
    },
    async getWithMetadata(key, options) {
      const stale = await injectRead(binding, key, options);
      if (stale) return { value: stale.value, metadata: null, cacheStatus: null };
      return kv.getWithMetadata(key, options);
    },
    async put(key, value, options) {
      await inject("put", binding, String(key));
      countWrite();
      await kv.put(key, value, options);
      remember(binding, String(key), value);
    },
    async delete(key) {
      await inject("delete", binding, String(key));
      countWrite();
      return kv.delete(key);
    },
    async list(options) {
      await inject("list", binding, options?.prefix ?? "");
      return kv.list(options);
    },
  };
}

const wrappedEnvs = new WeakMap();

function wrapEnv(env) {
  if (env === null || typeof env !== "object") return env;
  let w = wrappedEnvs.get(env);
  if (w) return w;
  const kvs = new Map();
  w = new Proxy(env, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof prop !== "string" || !KV_BINDINGS.has(prop) || value == null) return value;
      if (!kvs.has(prop)) kvs.set(prop, wrapKv(prop, value));
      return kvs.get(prop);
    },
  });
  wrappedEnvs.set(env, w);
  return w;
}

// --- control --------------------------------------------------------------

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

async function authenticate(request, path, body, env) {
  const secret = env?.[SECRET_VAR];
  if (typeof secret !== "string" || secret.length < 16) {
    return [503, `the shim has no control secret: set ${SECRET_VAR} (at least 16 characters) with wrangler secret put`];
  }
  const ts = request.headers.get("x-kvchaos-timestamp") ?? "";
  const nonce = request.headers.get("x-kvchaos-nonce") ?? "";
  const sig = request.headers.get("x-kvchaos-signature") ?? "";
  if (!/^\d{1,16}$/.test(ts) || Math.abs(now() - Number(ts)) > MAX_SKEW_MS) {
    return [401, "stale or missing x-kvchaos-timestamp"];
  }
  if (!/^[A-Za-z0-9_-]{8,64}$/.test(nonce) || nonces.has(nonce)) {
    return [401, "missing or reused x-kvchaos-nonce"];
  }
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const message = new TextEncoder().encode(`${request.method}\n${path}\n${ts}\n${nonce}\n${body}`);
  const bytes = /^[0-9a-f]{64}$/.test(sig) ? new Uint8Array(sig.match(/../g).map((h) => parseInt(h, 16))) : null;
  if (!bytes || !(await crypto.subtle.verify("HMAC", key, bytes, message))) {
    return [401, "bad x-kvchaos-signature"];
  }
  nonces.set(nonce, now());
  for (const [n, at] of nonces) {
    if (nonces.size <= MAX_NONCES && now() - at < 2 * MAX_SKEW_MS) break;
    nonces.delete(n);
  }
  return null;
}

function installSchedule(spec) {
  if (!spec || typeof spec.id !== "string" || !Array.isArray(spec.faults) || spec.faults.length > MAX_FAULTS) {
    throw new Error("a schedule is {id, faults: [...], expires_in_ms}");
  }
  const expires = Number(spec.expires_in_ms);
  if (!Number.isFinite(expires) || expires <= 0 || expires > 24 * 3600 * 1000) {
    throw new Error("expires_in_ms must be between 1 ms and 24 h");
  }
  schedule = {
    id: spec.id,
    started_at: now(),
    expires_at: now() + expires,
    max_writes: spec.max_writes ?? null,
    faults: spec.faults.map((f, index) => ({
      index,
      kind: String(f.kind),
      ops: Array.isArray(f.ops) ? f.ops.map(String) : [],
      prefix: typeof f.prefix === "string" ? f.prefix : "",
      namespace: typeof f.namespace === "string" ? f.namespace : null,
      p: typeof f.p === "number" ? f.p : 1,
      status: f.status,
      latency_ms: f.latency_ms,
      jitter_ms: f.jitter_ms,
      lag_ms: f.lag_ms,
      at_ms: Number(f.at_ms ?? 0),
      until_ms: f.until_ms == null ? null : Number(f.until_ms),
    })),
    injected: {},
    writes: 0,
    capped: 0,
  };
  return { id: schedule.id, faults: schedule.faults.length, expires_at: schedule.expires_at };
}

function stats() {
  const s = active();
  if (!s) return { schedule: null, injected: {}, writes: 0, capped: 0 };
  return { schedule: s.id, elapsed_ms: now() - s.started_at, injected: s.injected, writes: s.writes, capped: s.capped };
}

async function runScheduled(spec, env, ctx) {
  const controller = {
    cron: String(spec?.cron ?? ""),
    scheduledTime: Number(spec?.scheduled_time ?? now()),
    type: "scheduled",
    noRetry() {},
  };
  const handler = user.default;
  const wrapped = wrapEnv(env);
  try {
    if (typeof handler === "function") {
      const instance = new handler(ctx, wrapped);
      if (typeof instance.scheduled !== "function") return { ok: false, error: "the Worker has no scheduled handler" };
      await instance.scheduled(controller);
    } else if (typeof handler?.scheduled === "function") {
      await handler.scheduled(controller, wrapped, ctx);
    } else {
      return { ok: false, error: "the Worker has no scheduled handler" };
    }
    return { ok: true };
  } catch (e) {
    return { ok: false, error: String(e?.message ?? e), stack: String(e?.stack ?? "") };
  }
}

async function control(request, env, ctx) {
  const path = new URL(request.url).pathname;
  if (request.method !== "POST") return json(405, { error: "control routes take POST" });
  const length = Number(request.headers.get("content-length") ?? 0);
  if (length > MAX_BODY) return json(413, { error: "control body too large" });
  const body = await request.text();
  if (body.length > MAX_BODY) return json(413, { error: "control body too large" });
  const refused = await authenticate(request, path, body, env);
  if (refused) return json(refused[0], { error: refused[1] });
  let spec = {};
  try {
    spec = body ? JSON.parse(body) : {};
  } catch {
    return json(400, { error: "the body is not JSON" });
  }
  try {
    switch (path.slice(CONTROL.length)) {
      case "schedule":
        return json(200, installSchedule(spec));
      case "halt":
        schedule = null;
        return json(200, { halted: true });
      case "stats":
        return json(200, stats());
      case "scheduled":
        return json(200, await runScheduled(spec, env, ctx));
      default:
        return json(404, { error: "no such control route" });
    }
  } catch (e) {
    return json(400, { error: String(e?.message ?? e) });
  }
}

function json(status, value) {
  return new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });
}

function tag(response, env) {
  const version = env?.[VERSION_BINDING]?.id || "none";
  const header = `script=${SCRIPT}; version=${version}; schedule=${active()?.id ?? "none"}`;
  try {
    response.headers.set("x-kvchaos-shim", header);
    return response;
  } catch {
    // Immutable headers (a fetched response passed through): copy it.
    const copy = new Response(response.body, response);
    copy.headers.set("x-kvchaos-shim", header);
    return copy;
  }
}

async function onFetch(request, env, ctx, next) {
  if (new URL(request.url).pathname.startsWith(CONTROL)) return tag(await control(request, env, ctx), env);
  let response;
  try {
    response = await next(wrapEnv(env));
  } catch (e) {
    // A throw would be answered by the runtime itself, without the header, and the run would
    // take a healthy canary for another script: answer the 500 here, tagged, and log it.
    console.error(e?.stack ?? String(e));
    response = new Response("the Worker threw an exception", { status: 500 });
  }
  return tag(response, env);
}

// --- the Worker's handlers, with env wrapped --------------------------------

// The handlers the runtime calls on a module Worker's default export.
const HANDLERS = ["fetch", "scheduled", "queue", "tail", "trace", "email", "test"];

// Names to carry over from a default-exported object: its own properties and, for an instance
// of a class (`export default new App()`), the handler methods up its prototype chain.
function handlerNames(h) {
  const names = new Set(Object.keys(h));
  for (const n of HANDLERS) if (typeof h[n] === "function") names.add(n);
  return names;
}

function wrapHandlers(h) {
  const out = {};
  for (const name of handlerNames(h)) {
    const fn = h[name];
    if (typeof fn !== "function") {
      out[name] = fn;
    } else if (name === "fetch") {
      out.fetch = (request, env, ctx) => onFetch(request, env, ctx, (w) => fn.call(h, request, w, ctx));
    } else {
      out[name] = (event, env, ctx) => fn.call(h, event, wrapEnv(env), ctx);
    }
  }
  if (!out.fetch) out.fetch = (request, env, ctx) => onFetch(request, env, ctx, () => new Response("Not Found", { status: 404 }));
  return out;
}

function wrapClass(Base) {
  return class extends Base {
    constructor(ctx, env) {
      super(ctx, wrapEnv(env));
      this.__kvchaos_env = env;
    }
    fetch(request) {
      const parent = super.fetch ? (w) => super.fetch(request) : () => new Response("Not Found", { status: 404 });
      return onFetch(request, this.__kvchaos_env, this.ctx, parent);
    }
  };
}

export default typeof user.default === "function" ? wrapClass(user.default) : wrapHandlers(user.default ?? {});

// Durable Object classes get the wrapped env too.
__KVCHAOS_DO_CLASSES__
