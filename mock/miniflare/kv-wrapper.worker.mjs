// The KV namespace API in JavaScript, over the workerd KV binding protocol.
//
// Loaded by `kv-routing-plugin.mjs` as an internal extension module and
// bound as a `wrapped` binding whose inner binding `fetcher` is a service
// binding to the mock KV (`--kv-binding wrapped`). It sends exactly the
// requests workerd's own KV class sends (see DESIGN.md) and gives the Worker
// the same values and the same errors, with one difference: a daily-limit
// refusal (429 with reason phrase `KV <op>() limit exceeded for the day.`)
// is thrown as `new Error(reasonPhrase)`, the exact text a deployed Worker
// sees. In production that error comes from the runtime's limit enforcer
// before any request is sent, not from the KV service, so it carries no
// `KV PUT failed: 429` prefix; every other non-2xx keeps workerd's
// `KV <METHOD> failed: <status> <reason>` text, as it does in production.
//
// Not supported (workerd's class has them; the mock does not need them):
// `deleteBulk`, RPC serialisation of the binding.

const MAX_KEY_BYTES = 512;
const DAILY_LIMIT = /^KV [a-z]+\(\) limit exceeded for the day\.$/;
const BASE = "https://fake-host";
const PUT_TYPE_ERROR =
  "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.";

const utf8 = new TextEncoder();
const MAX_UINT32 = 4294967295;

/**
 * A key as workerd's class turns a JS string into UTF-8: a lone surrogate becomes U+FFFD
 * (encodeURIComponent would throw a URIError on it).
 */
function wellFormed(name) {
  const s = String(name);
  if (typeof s.toWellFormed === "function") return s.toWellFormed();
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

/**
 * `expiration` / `expirationTtl` as workerd's class converts them to its integer option:
 * the number truncated toward zero (60.5 sends 60); outside 0..2^32-1 (1e10, -1) or not a
 * number, a RangeError before any request (as observed against workerd in issue 13).
 */
function integerOption(field, v) {
  const n = Number(v);
  if (!Number.isFinite(n) || Math.trunc(n) < 0 || Math.trunc(n) > MAX_UINT32) {
    throw new RangeError(
      `Value out of range for ${field}. Must be between 0 and ${MAX_UINT32} (inclusive).`,
    );
  }
  return String(Math.trunc(n));
}

function validateKeyName(method, name) {
  if (name === "") throw new TypeError("Key name cannot be empty.");
  if (name === ".") throw new TypeError('"." is not allowed as a key name.');
  if (name === "..") throw new TypeError('".." is not allowed as a key name.');
  const size = utf8.encode(name).length;
  if (size > MAX_KEY_BYTES) {
    throw new Error(
      `KV ${method} failed: 414 UTF-8 encoded length of ${size} exceeds key length limit of ${MAX_KEY_BYTES}.`,
    );
  }
}

/** Throw the error a Worker sees for a non-2xx `resp` to a METHOD request. */
async function throwFor(method, resp) {
  // Read the body so that the connection can be reused.
  await resp.arrayBuffer().catch(() => {});
  const reason = resp.statusText;
  if (resp.status === 429 && DAILY_LIMIT.test(reason)) throw new Error(reason);
  throw new Error(`KV ${method} failed: ${resp.status} ${reason}`);
}

function keyUrl(name, params = []) {
  const query = [["urlencoded", "true"], ...params]
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join("&");
  return `${BASE}/${encodeURIComponent(name)}?${query}`;
}

/** `get(key, "json")` and `get(key, {type, cacheTtl})` alike. */
function getOptions(options) {
  if (options === undefined || options === null) return {};
  if (typeof options === "string") return { type: options };
  return { type: options.type, cacheTtl: options.cacheTtl };
}

class KvNamespace {
  #fetcher;

  constructor(fetcher) {
    this.#fetcher = fetcher;
  }

  async get(name, options) {
    if (Array.isArray(name)) return this.#getBulk(name, options, false);
    const { value } = await this.#getOne(wellFormed(name), options);
    return value;
  }

  async getWithMetadata(name, options) {
    if (Array.isArray(name)) return this.#getBulk(name, options, true);
    return this.#getOne(wellFormed(name), options);
  }

  async #getOne(name, options) {
    validateKeyName("GET", name);
    const { type, cacheTtl } = getOptions(options);
    const params = cacheTtl === undefined ? [] : [["cache_ttl", String(cacheTtl)]];
    const resp = await this.#fetcher.fetch(keyUrl(name, params), { method: "GET" });
    const cacheStatus = resp.headers.get("cf-cache-status");
    if (resp.status === 404 || resp.status === 410) {
      await resp.arrayBuffer().catch(() => {});
      return { value: null, metadata: null, cacheStatus };
    }
    if (!resp.ok) await throwFor("GET", resp);
    const meta = resp.headers.get("cf-kv-metadata");
    const typeName = type ?? "text";
    let value;
    switch (typeName) {
      case "text":
        value = await resp.text();
        break;
      case "json":
        value = JSON.parse(await resp.text());
        break;
      case "arrayBuffer":
        value = await resp.arrayBuffer();
        break;
      case "stream":
        value = resp.body;
        break;
      default:
        await resp.arrayBuffer().catch(() => {});
        throw new TypeError(
          'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".',
        );
    }
    return { value, metadata: meta === null ? null : JSON.parse(meta), cacheStatus };
  }

  async #getBulk(names, options, withMetadata) {
    const { type, cacheTtl } = getOptions(options);
    const body = { keys: names.map(wellFormed) };
    if (type !== undefined && type !== "") body.type = String(type);
    if (withMetadata) body.withMetadata = true;
    if (cacheTtl !== undefined) body.cacheTtl = cacheTtl;
    const resp = await this.#fetcher.fetch(`${BASE}/bulk/get`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!resp.ok) await throwFor("GET_BULK", resp);
    const result = JSON.parse(await resp.text());
    return new Map(result !== null && typeof result === "object" ? Object.entries(result) : []);
  }

  async list(options) {
    const params = [];
    const o = options ?? {};
    if (o.limit !== undefined && o.limit !== null && o.limit > 0) {
      params.push(["key_count_limit", String(o.limit)]);
    }
    if (o.prefix !== undefined && o.prefix !== null) params.push(["prefix", wellFormed(o.prefix)]);
    if (o.cursor !== undefined && o.cursor !== null) params.push(["cursor", String(o.cursor)]);
    const query = params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
    const resp = await this.#fetcher.fetch(`${BASE}/${query ? `?${query}` : ""}`, { method: "GET" });
    if (!resp.ok) await throwFor("GET", resp);
    const cacheStatus = resp.headers.get("cf-cache-status");
    const result = JSON.parse(await resp.text());
    // The service sends each key's metadata as a JSON-encoded string.
    for (const key of Array.isArray(result?.keys) ? result.keys : []) {
      if (key !== null && typeof key === "object" && typeof key.metadata === "string") {
        key.metadata = JSON.parse(key.metadata);
      }
    }
    if (result !== null && typeof result === "object") result.cacheStatus = cacheStatus;
    return result;
  }

  async put(name, value, options) {
    name = wellFormed(name);
    validateKeyName("PUT", name);
    const params = [];
    const headers = {};
    const o = options ?? {};
    if (o.expiration !== undefined) {
      params.push(["expiration", integerOption("expiration", o.expiration)]);
    }
    if (o.expirationTtl !== undefined) {
      params.push(["expiration_ttl", integerOption("expirationTtl", o.expirationTtl)]);
    }
    if (o.metadata !== undefined && o.metadata !== null) {
      headers["cf-kv-metadata"] = JSON.stringify(o.metadata);
    }
    let body;
    if (value !== null && typeof value === "object") {
      if (
        !(value instanceof ArrayBuffer || ArrayBuffer.isView(value) || value instanceof ReadableStream)
      ) {
        throw new TypeError(PUT_TYPE_ERROR);
      }
      body = value;
    } else {
      body = String(value);
      headers["content-type"] = "text/plain;charset=UTF-8";
    }
    const resp = await this.#fetcher.fetch(keyUrl(name, params), { method: "PUT", headers, body });
    if (!resp.ok) await throwFor("PUT", resp);
    await resp.arrayBuffer();
  }

  async delete(name) {
    name = wellFormed(name);
    validateKeyName("DELETE", name);
    const resp = await this.#fetcher.fetch(keyUrl(name), { method: "DELETE" });
    if (!resp.ok) await throwFor("DELETE", resp);
    await resp.arrayBuffer();
  }
}

/** workerd calls this with the inner bindings; the result is the Worker's binding. */
export default function makeKvNamespace(env) {
  return new KvNamespace(env.fetcher);
}
