// Builds a Worker with wrangler's own pipeline, `wrangler deploy --dry-run
// --outdir DIR`, so that everything `wrangler dev` applies at build time
// applies here too: `[build] command`, TypeScript and JSX, `rules` (Text,
// Data, CompiledWasm modules), `alias`, `define`, `nodejs_compat` polyfills
// (unenv), `no_bundle`, `find_additional_modules`, `[env.NAME]` overrides.
//
// Why the dry-run build and not wrangler's dev API (`unstable_startWorker`):
// the dev API starts its own miniflare behind a proxy Worker and gives no
// place to route KV bindings to kvchaos's mock, fire crons with a chosen
// scheduledTime, or load the run's clock before the Worker's modules; the
// dry-run build is the same bundler step `wrangler dev` runs, and its output
// (one entry module plus the rules' modules, with a source map) loads into
// our own miniflare with the worker options wrangler derives from the same
// config (`unstable_getMiniflareWorkerOptions`).
//
// Then, when the run's clock is not real time, an entry module is written
// next to the build output: it imports `run-clock.mjs` (which replaces
// globalThis.Date) before the Worker's entry, re-exports everything, and
// wraps the default export's `scheduled` handler so that the launcher can
// move the clock with a `kvchaos:clock:<wall ms>:<speed>` cron event.

import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** Cron text of the launcher's clock-moving event (see run-clock.mjs). */
export const CLOCK_CRON = "kvchaos:clock";
/** Longest build output kept (bytes), so that a chatty build cannot fill memory. */
const OUTPUT_LIMIT = 256 * 1024;

/** A build that wrangler refused; `message` quotes wrangler's output whole. */
export class BuildError extends Error {}

function wranglerBin() {
  const pkg = createRequire(import.meta.url).resolve("wrangler/package.json");
  return path.join(path.dirname(pkg), "bin", "wrangler.js");
}

/** wrangler's output without colours, telemetry notices or blank runs. */
function cleanOutput(text) {
  return text
    // biome-ignore lint: ANSI escapes
    .replace(/\u001b\[[0-9;]*m/g, "")
    .split("\n")
    .filter((l) => !/telemetry|Cloudflare collects anonymous|Logs were written to/i.test(l))
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

function run(cmd, args, options) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const keep = (chunk) => {
      if (out.length < OUTPUT_LIMIT) out += chunk.toString("utf8");
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("error", (e) => resolve({ code: -1, out: `${out}\n${e.message}` }));
    child.on("close", (code, signal) => resolve({ code: code ?? signal, out }));
  });
}

/**
 * Build the Worker of `configPath` (environment `env` or null) into
 * `outdir`. `bundle`: "auto" (the config decides), "always", "never".
 * Returns the entry module's path.
 */
export async function build({ configPath, env, bundle, outdir }) {
  const args = [wranglerBin(), "deploy", "--dry-run", "--outdir", outdir, "--config", configPath];
  if (env) args.push("--env", env);
  if (bundle === "always") args.push("--bundle");
  if (bundle === "never") args.push("--no-bundle");
  const began = Date.now();
  // wrangler keeps its intermediates in `.wrangler/tmp` next to the config; one it created
  // for this build and left empty is removed again.
  const dotWrangler = path.join(path.dirname(configPath), ".wrangler");
  const hadDotWrangler = existsSync(dotWrangler);
  // wrangler writes a debug log per run; keep it out of the user's home, gone on exit.
  const logs = `${outdir}-wrangler-logs`;
  process.on("exit", () => rmSync(logs, { recursive: true, force: true }));
  const { code, out } = await run(process.execPath, args, {
    cwd: path.dirname(configPath),
    env: {
      ...process.env,
      NO_COLOR: "1",
      FORCE_COLOR: "0",
      WRANGLER_SEND_METRICS: "false",
      WRANGLER_LOG_PATH: logs,
      CI: "true",
    },
  });
  if (!hadDotWrangler) removeIfEmpty(dotWrangler);
  const text = cleanOutput(out);
  if (code !== 0) {
    throw new BuildError(
      `wrangler could not build the Worker of '${configPath}'${env ? ` (env '${env}')` : ""} (exit ${code}):\n${text}`,
    );
  }
  for (const line of text.split("\n")) {
    if (/WARNING|ERROR/.test(line)) console.error(`kvchaos launcher: wrangler: ${line.trim()}`);
  }
  const entry = entryOf(outdir);
  console.error(`kvchaos launcher: built ${configPath} with wrangler in ${Date.now() - began} ms`);
  return entry;
}

/** Remove `dir` when it holds nothing but empty directories. */
function removeIfEmpty(dir) {
  const empty = (d) => readdirSync(d, { withFileTypes: true }).every((e) => e.isDirectory() && empty(path.join(d, e.name)));
  try {
    if (existsSync(dir) && empty(dir)) rmSync(dir, { recursive: true });
  } catch {
    // Best effort: a folder we cannot read or remove stays.
  }
}

/** The entry module wrangler wrote: index.js (bundled) or the main's own name. */
function entryOf(outdir) {
  const index = path.join(outdir, "index.js");
  if (existsSync(index)) return index;
  const js = readdirSync(outdir).filter((f) => /\.(m?js)$/.test(f));
  if (js.length === 1) return path.join(outdir, js[0]);
  throw new BuildError(`wrangler's build in '${outdir}' has no index.js entry module (found: ${js.join(", ") || "none"})`);
}

/**
 * Write `kvchaos-entry.mjs` next to `entry`: the run clock first, then the
 * Worker. `clock` is {base, real, speed} (ms, ms, factor). Returns its path,
 * or null when the entry is not an ES module (service-worker syntax).
 */
export function writeClockEntry(entry, clock) {
  const src = readFileSync(entry, "utf8");
  if (!/^\s*(export|import)\b/m.test(src)) return null;
  const dir = path.dirname(entry);
  const shim = readFileSync(path.join(HERE, "run-clock.mjs"), "utf8")
    .replaceAll("__KVCHAOS_BASE__", String(clock.base))
    .replaceAll("__KVCHAOS_REAL__", String(clock.real))
    .replaceAll("__KVCHAOS_SPEED__", String(clock.speed));
  writeFileSync(path.join(dir, "kvchaos-run-clock.mjs"), shim);
  const spec = `./${path.relative(dir, entry).split(path.sep).join("/")}`;
  const hasDefault = /\bas\s+default\b|\bexport\s+default\b/.test(src);
  const lines = [
    `import { setRunClock } from "./kvchaos-run-clock.mjs";`,
    `export * from ${JSON.stringify(spec)};`,
  ];
  if (hasDefault) {
    lines.push(`import worker from ${JSON.stringify(spec)};`, WRAP_DEFAULT, `export default wrap(worker);`);
  }
  const out = path.join(dir, "kvchaos-entry.mjs");
  writeFileSync(out, `${lines.join("\n")}\n`);
  return out;
}

// The default export with a `scheduled` handler that takes the launcher's
// clock events and passes every other event to the Worker's own handler.
const WRAP_DEFAULT = `
const CLOCK = ${JSON.stringify(`${CLOCK_CRON}:`)};
function clockEvent(controller) {
  const cron = controller?.cron;
  if (typeof cron !== "string" || !cron.startsWith(CLOCK)) return false;
  const [real, speed] = cron.slice(CLOCK.length).split(":").map(Number);
  if (!setRunClock(Number(controller.scheduledTime), real, speed)) throw new Error("bad clock event " + cron);
  return true;
}
function noHandler() {
  throw new Error("the Worker has no scheduled handler");
}
function wrap(d) {
  if (typeof d === "function") {
    return class extends d {
      scheduled(controller, ...rest) {
        if (clockEvent(controller)) return;
        if (typeof super.scheduled !== "function") noHandler();
        return super.scheduled(controller, ...rest);
      }
    };
  }
  if (d === null || typeof d !== "object") return d;
  const w = Object.create(Object.getPrototypeOf(d), Object.getOwnPropertyDescriptors(d));
  const own = d.scheduled;
  Object.defineProperty(w, "scheduled", {
    configurable: true,
    enumerable: true,
    writable: true,
    value(controller, ...rest) {
      if (clockEvent(controller)) return;
      if (typeof own !== "function") noHandler();
      return own.call(this, controller, ...rest);
    },
  });
  return w;
}`;
