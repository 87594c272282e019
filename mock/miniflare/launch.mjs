#!/usr/bin/env node
// kvchaos's local Worker launcher: runs one Worker under miniflare (the real
// workerd runtime) with its KV bindings routed to kvchaos's mock KV.
//
// Usage:
//   node launch.mjs --worker DIR [--kv-address 127.0.0.1:PORT | --no-kv-routing]
//                   [--kv-binding workerd|wrapped] [--bundle auto|always|never]
//                   [--config FILE] [--env NAME] [--clock BASE_MS,WALL_MS,SPEED]
//                   [--persist DIR] [--scratch DIR]
//
// --kv-binding workerd (default): each KV binding is workerd's own KV class
// backed by the mock. --kv-binding wrapped: each is a small JS wrapper
// (`kv-wrapper.worker.mjs`) over a service binding to the mock, which throws
// a daily-limit refusal with the exact text a deployed Worker sees
// (`KV put() limit exceeded for the day.`, without workerd's
// `KV PUT failed: 429 ` prefix).
//
// The Worker is built by wrangler's own pipeline (`build.mjs`: `wrangler
// deploy --dry-run --outdir`, see there for why), so `[build] command`,
// TypeScript, `rules`, `alias`, `define` and `nodejs_compat` polyfills apply
// as under `wrangler dev`; its bindings, `[vars]` and `.dev.vars` come from
// `unstable_getMiniflareWorkerOptions`. --config FILE (relative to DIR)
// names the config file (default: the first of wrangler.toml, wrangler.jsonc,
// wrangler.json in DIR); --env NAME picks its `[env.NAME]` section, as
// `wrangler dev --config FILE --env NAME` would. --bundle auto (default):
// the config's `no_bundle` decides; always/never override it (wrangler's
// --bundle/--no-bundle). A failed build answers {"ready":false} with
// wrangler's output whole. The build goes to a temporary directory removed
// on exit.
//
// --clock BASE_MS,WALL_MS,SPEED: the run's clock. Inside the Worker,
// Date.now() and new Date() read BASE_MS + (wall now - WALL_MS) x SPEED
// (`run-clock.mjs`, loaded before the Worker's modules), the rule of the mock
// KV's clock; without it the Worker's Date is real time.
//
// --persist DIR: D1/Durable Object state (default: a fresh temporary
// directory, removed on exit). --scratch DIR: a directory the caller made
// for this run (kvchaos points TMPDIR into it); removed on exit, so that a
// launcher whose parent died (stdin EOF) still cleans up.
//
// DIR holds wrangler.toml, wrangler.jsonc or wrangler.json; wrangler reads it
// exactly as `wrangler dev` would. Before the readiness line, each D1
// database's `migrations_dir` (default `migrations`, next to the config) is
// applied: its *.sql files in name order, each in one batch, recorded in the
// `d1_migrations` table (or `migrations_table`) as `wrangler d1 migrations
// apply --local` does, so a persisted state is not migrated twice.
//
// Protocol (one JSON object per line):
//   stdout, once:  {"ready":true,"url":"http://127.0.0.1:PORT",
//                   "kv_bindings":[{"binding","id","namespace"}],"crons":[...],
//                   "kv_binding":"workerd"|"wrapped"|"miniflare","bundled":BOOL,
//                   "clock":BOOL (the Worker's Date follows --clock)}
//              or  {"ready":false,"error":"..."} and exit code 1.
//   stdin → stdout:
//     {"cmd":"scheduled","cron":"*/1 * * * *","scheduledTime":MS}
//        → {"ok":true,"outcome":"ok"|"exception"[,"exception":"Error: …\n    at …"]}
//          (the exception: the Worker's uncaught error, message and stack, when workerd
//          logged one within a second of the outcome)
//     {"cmd":"clock","now_ms":MS,"wall_ms":MS,"speed":N} → {"ok":true}
//        moves the Worker's clock (needs --clock; the mock KV's is moved by kvchaos)
//     {"cmd":"stop"} → miniflare disposed, exit 0 (stdin EOF does the same).
//   Anything that is not valid answers {"ok":false,"error":"..."}.
// Everything else (the Worker's console, miniflare's log) goes to stderr.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

import { BuildError, CLOCK_CRON, build, writeClockEntry } from "./build.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PLUGIN_PATH = path.join(HERE, "kv-routing-plugin.mjs");
const CONFIG_FILES = ["wrangler.toml", "wrangler.jsonc", "wrangler.json"];

// stdout carries the protocol only: route every stray console.log (ours,
// wrangler's, miniflare's) to stderr, and keep a private writer.
const protocolOut = process.stdout.write.bind(process.stdout);
console.log = console.error;
console.info = console.error;
console.debug = console.error;
function reply(obj) {
  protocolOut(`${JSON.stringify(obj)}\n`);
}

class UsageError extends Error {}

function parseArgs(argv) {
  const args = {
    worker: null,
    kvAddress: null,
    kvRouting: true,
    kvBinding: "workerd",
    bundle: "auto",
    persist: null,
    scratch: null,
    config: null,
    env: null,
    clock: null,
    kvKeepLocal: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`missing value after '${a}'`);
      return v;
    };
    switch (a) {
      case "--worker": args.worker = value(); break;
      case "--kv-address": args.kvAddress = value(); break;
      case "--no-kv-routing": args.kvRouting = false; break;
      case "--kv-binding": args.kvBinding = value(); break;
      case "--bundle": args.bundle = value(); break;
      case "--persist": args.persist = value(); break;
      case "--scratch": args.scratch = value(); break;
      case "--config": args.config = value(); break;
      case "--env": args.env = value(); break;
      case "--clock": args.clock = parseClock(value()); break;
      // A binding left on miniflare's own KV while the others are routed (differential tests).
      case "--kv-keep-local": args.kvKeepLocal.push(value()); break;
      default: throw new UsageError(`unknown argument '${a}'`);
    }
  }
  if (!args.worker) throw new UsageError("missing --worker DIR");
  if (!["workerd", "wrapped"].includes(args.kvBinding)) {
    throw new UsageError(`invalid --kv-binding '${args.kvBinding}': expected workerd or wrapped`);
  }
  if (!["auto", "always", "never"].includes(args.bundle)) {
    throw new UsageError(`invalid --bundle '${args.bundle}': expected auto, always or never`);
  }
  if (args.scratch) {
    const scratch = path.resolve(args.scratch);
    process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));
  }
  if (args.kvRouting && !args.kvAddress) {
    throw new UsageError("missing --kv-address 127.0.0.1:PORT (or pass --no-kv-routing)");
  }
  if (!args.kvRouting && args.kvBinding !== "workerd") {
    throw new UsageError("--kv-binding wrapped needs --kv-address (the wrapper talks to the mock KV)");
  }
  if (!args.kvRouting && args.kvAddress) {
    throw new UsageError("--kv-address and --no-kv-routing exclude each other");
  }
  if (args.kvAddress && !/^127\.0\.0\.1:\d{1,5}$|^\[::1\]:\d{1,5}$|^localhost:\d{1,5}$/.test(args.kvAddress)) {
    throw new UsageError(`invalid --kv-address '${args.kvAddress}': expected a loopback address, e.g. 127.0.0.1:8787`);
  }
  return args;
}

/** `BASE_MS,WALL_MS,SPEED` → {base, real, speed}. */
function parseClock(text) {
  const parts = text.split(",").map(Number);
  if (parts.length !== 3 || !parts.every(Number.isFinite) || parts[2] < 0) {
    throw new UsageError(`invalid --clock '${text}': expected BASE_MS,WALL_MS,SPEED, e.g. 1767225600000,1767225600000,60`);
  }
  return { base: parts[0], real: parts[1], speed: parts[2] };
}

function findConfig(dir) {
  for (const f of CONFIG_FILES) {
    const p = path.join(dir, f);
    if (existsSync(p)) return p;
  }
  throw new UsageError(`no ${CONFIG_FILES.join(", ")} in worker directory '${dir}'`);
}

/** Name → namespace id of every KV binding in wrangler's worker options. */
function kvEntries(kvNamespaces) {
  if (!kvNamespaces) return [];
  if (Array.isArray(kvNamespaces)) return kvNamespaces.map((name) => [name, name]);
  return Object.entries(kvNamespaces).map(([name, ns]) => [name, typeof ns === "string" ? ns : ns.id]);
}

async function start(args) {
  const { Miniflare } = await import("miniflare");
  const { unstable_getMiniflareWorkerOptions, unstable_readConfig, unstable_splitSqlQuery: splitSql } = await import(
    "wrangler"
  );

  const workerDir = path.resolve(args.worker);
  const configPath = args.config ? path.resolve(workerDir, args.config) : findConfig(workerDir);
  if (!existsSync(configPath)) throw new UsageError(`no wrangler config '${configPath}'`);
  const env = args.env ?? undefined;
  const { workerOptions, main } = unstable_getMiniflareWorkerOptions(configPath, env);
  if (!main) throw new UsageError(`'${configPath}' names no main module`);
  const config = unstable_readConfig({ config: configPath, env });
  const persistRoot = args.persist ?? mkdtempSync(path.join(tmpdir(), "kvchaos-miniflare-"));
  const ownsPersist = args.persist === null;
  if (ownsPersist) {
    // "exit" handlers run on every process.exit, including miniflare's own
    // on SIGINT/SIGTERM (it kills workerd there and exits at once).
    process.on("exit", () => rmSync(persistRoot, { recursive: true, force: true }));
  }
  console.error(`kvchaos launcher: D1/DO state in ${persistRoot}`);

  const outdir = mkdtempSync(path.join(tmpdir(), "kvchaos-build-"));
  process.on("exit", () => rmSync(outdir, { recursive: true, force: true }));
  let entry = await build({ configPath, env, bundle: args.bundle, outdir });
  let clock = false;
  if (args.clock) {
    const shimmed = writeClockEntry(entry, args.clock);
    if (shimmed) {
      entry = shimmed;
      clock = true;
    } else {
      console.error("kvchaos launcher: the Worker is not an ES module: its Date stays on real time");
    }
  }
  const script = { scriptPath: entry, modulesRoot: outdir };
  const bundled = !(args.bundle === "never" || (args.bundle === "auto" && config.no_bundle === true));

  const kv = kvEntries(workerOptions.kvNamespaces);
  const kvBindings = kv.map(([binding, id]) => ({ binding, id, namespace: binding }));
  const opts = { ...workerOptions };
  if (args.kvRouting) {
    const keep = new Set(args.kvKeepLocal);
    if (keep.size > 0) opts.kvNamespaces = Object.fromEntries(kv.filter(([b]) => keep.has(b)));
    else delete opts.kvNamespaces;
    opts.unsafeBindings = [
      ...(opts.unsafeBindings ?? []),
      ...kvBindings.filter((b) => !keep.has(b.binding)).map((b) => ({
        name: b.binding,
        type: "kvchaos-kv",
        plugin: { package: PLUGIN_PATH, name: "kvchaos-kv" },
        options: { address: args.kvAddress, namespace: b.namespace, mode: args.kvBinding },
      })),
    ];
  }
  // Miniflare never fires crons itself; kvchaos fires them through stdin. Read them from the
  // config itself: not every wrangler release puts them in the worker options.
  const crons = config.triggers?.crons ?? workerOptions.cronTriggers ?? [];

  const mf = new Miniflare({
    ...opts,
    name: opts.name ?? "worker",
    modules: true,
    ...script,
    // wrangler's rules (the config's, then its defaults) name the build's extra modules.
    modulesRules: [{ type: "ESModule", include: ["**/*.js", "**/*.mjs"] }, ...(opts.modulesRules ?? [])],
    host: "127.0.0.1",
    port: 0,
    cf: false,
    defaultPersistRoot: persistRoot,
    kvPersist: args.kvRouting ? undefined : path.join(persistRoot, "kv"),
    d1Persist: path.join(persistRoot, "d1"),
    durableObjectsPersist: path.join(persistRoot, "do"),
    // Structured, verbose workerd logs: the Worker's console lines and its
    // uncaught exceptions (message and stack), one JSON object a line.
    structuredWorkerdLogs: true,
    verbose: true,
    handleRuntimeStdio(stdout, stderr) {
      readline.createInterface({ input: stdout, terminal: false }).on("line", logRuntimeLine);
      readline.createInterface({ input: stderr, terminal: false }).on("line", logRuntimeLine);
    },
  });
  const url = await mf.ready;
  await applyD1Migrations(mf, configPath, splitSql);
  return { mf, url, kvBindings, crons, persistRoot, ownsPersist, bundled, clock };
}

const UNCAUGHT = /^uncaught exception; source = (.*?); stack = ([\s\S]*)$/;

// The Worker's uncaught exceptions as they arrive, for the `scheduled` reply:
// `seq` counts them, `last` is the newest (its stack), `waiters` wake on one.
const uncaught = { seq: 0, last: null, waiters: [] };
// The runtime's last error lines, quoted in the not-ready reason when workerd fails to start
// (its own message only says "see the logging output above").
const runtimeErrors = [];
function noteRuntimeError(text) {
  runtimeErrors.push(text);
  if (runtimeErrors.length > 20) runtimeErrors.shift();
}

function noteUncaught(text) {
  uncaught.seq += 1;
  uncaught.last = text;
  for (const wake of uncaught.waiters.splice(0)) wake();
}

/** The newest uncaught exception after `seq`, waiting up to `ms` for one (workerd's log
 * and the event's outcome travel on different pipes). */
async function uncaughtSince(seq, ms) {
  if (uncaught.seq === seq) {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      uncaught.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  return uncaught.seq === seq ? null : uncaught.last;
}

/**
 * One line of workerd's output, to stderr (kvchaos's worker.log): the
 * Worker's console as `[level] message`, an uncaught exception as
 * `[uncaught] source: stack`; workerd's own verbose chatter (it carries a
 * `source` file) is dropped unless it is a warning or an error.
 */
function logRuntimeLine(line) {
  let entry;
  try {
    entry = JSON.parse(line);
  } catch {
    if (line.trim() !== "") console.error(line);
    return;
  }
  if (typeof entry !== "object" || entry === null || typeof entry.message !== "string") {
    console.error(line);
    return;
  }
  const thrown = UNCAUGHT.exec(entry.message);
  if (thrown) {
    console.error(`[uncaught] ${thrown[1]}: ${thrown[2]}`);
    noteUncaught(thrown[2]);
    noteRuntimeError(thrown[2]);
  } else if (entry.source === undefined) {
    console.error(`[${entry.level ?? "log"}] ${entry.message}`);
  } else if (/^(warn|error)/.test(entry.level ?? "") && !entry.message.startsWith("uncaught exception;")) {
    console.error(`[workerd ${entry.level}] ${entry.message}`);
    noteRuntimeError(entry.message);
  }
}

/** Apply each D1 binding's pending migration files (see the header). */
async function applyD1Migrations(mf, configPath, splitSql) {
  const { unstable_readConfig } = await import("wrangler");
  const databases = unstable_readConfig({ config: configPath }).d1_databases ?? [];
  for (const d of databases) {
    const dir = path.resolve(path.dirname(configPath), d.migrations_dir ?? "migrations");
    if (!existsSync(dir)) continue;
    const table = d.migrations_table ?? "d1_migrations";
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table)) throw new UsageError(`invalid migrations_table '${table}'`);
    const db = await mf.getD1Database(d.binding);
    await db
      .prepare(`CREATE TABLE IF NOT EXISTS ${table} (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)`)
      .run();
    const applied = new Set((await db.prepare(`SELECT name FROM ${table}`).all()).results.map((r) => r.name));
    const files = readdirSync(dir).filter((f) => f.endsWith(".sql")).sort();
    for (const file of files.filter((f) => !applied.has(f))) {
      const statements = splitSql(readFileSync(path.join(dir, file), "utf8"));
      try {
        await db.batch([
          ...statements.map((sql) => db.prepare(sql)),
          db.prepare(`INSERT INTO ${table} (name) VALUES (?1)`).bind(file),
        ]);
      } catch (e) {
        throw new Error(`D1 migration '${path.join(dir, file)}' for binding ${d.binding} failed: ${e?.message ?? e}`);
      }
      console.error(`kvchaos launcher: D1 ${d.binding}: applied ${file}`);
    }
  }
}

async function serveCommands(run) {
  const { mf } = run;
  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    try {
      await mf.dispose();
    } catch (e) {
      console.error(`kvchaos launcher: dispose failed: ${e?.stack ?? e}`);
      code = code || 1;
    }
    process.exit(code);
  };

  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  // Commands run one at a time, in order.
  let queue = Promise.resolve();
  rl.on("line", (line) => {
    queue = queue.then(() => handle(line));
  });
  rl.on("close", () => {
    queue = queue.then(() => stop(0));
  });

  async function handle(line) {
    if (line.trim() === "") return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      reply({ ok: false, error: `invalid JSON command: ${e.message}` });
      return;
    }
    try {
      switch (cmd.cmd) {
        case "scheduled": {
          if (typeof cmd.cron !== "string") throw new Error("'cron' must be a string");
          const scheduledTime = new Date(typeof cmd.scheduledTime === "number" ? cmd.scheduledTime : Date.now());
          const worker = await mf.getWorker();
          const seq = uncaught.seq;
          const r = await worker.scheduled({ cron: cmd.cron, scheduledTime });
          const exception = r.outcome === "exception" ? await uncaughtSince(seq, 1000) : null;
          reply({ ok: true, outcome: r.outcome, ...(exception ? { exception } : {}) });
          break;
        }
        case "clock": {
          if (!run.clock) throw new Error("the Worker's clock is real time (no --clock, or not an ES module)");
          const nums = [cmd.now_ms, cmd.wall_ms, cmd.speed];
          if (!nums.every((n) => typeof n === "number" && Number.isFinite(n))) {
            throw new Error("'now_ms', 'wall_ms' and 'speed' must be numbers");
          }
          const worker = await mf.getWorker();
          const r = await worker.scheduled({
            cron: `${CLOCK_CRON}:${cmd.wall_ms}:${cmd.speed}`,
            scheduledTime: new Date(cmd.now_ms),
          });
          if (r.outcome !== "ok") throw new Error(`moving the Worker's clock failed (${r.outcome})`);
          reply({ ok: true });
          break;
        }
        case "stop":
          await stop(0);
          break;
        default:
          reply({ ok: false, error: `unknown command '${cmd.cmd}': expected scheduled, clock or stop` });
      }
    } catch (e) {
      reply({ ok: false, error: String(e?.message ?? e) });
    }
  }
}

// Signals end the launcher at once; "exit" handlers (ours and miniflare's,
// which kills workerd) still run. Installed before miniflare starts so that
// an early signal cleans up too.
process.on("SIGTERM", () => process.exit(143));
process.on("SIGINT", () => process.exit(130));

let args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (e) {
  reply({ ready: false, error: e.message });
  process.exit(2);
}
try {
  const run = await start(args);
  reply({
    ready: true,
    url: run.url.origin,
    kv_bindings: run.kvBindings,
    crons: run.crons,
    kv_binding: args.kvRouting ? args.kvBinding : "miniflare",
    bundled: run.bundled,
    clock: run.clock,
  });
  await serveCommands(run);
} catch (e) {
  console.error(e instanceof BuildError ? e.message : (e?.stack ?? e));
  let error = String(e?.message ?? e);
  if (e?.code === "ERR_RUNTIME_FAILURE" && runtimeErrors.length > 0) {
    error = `${error.replace(/ There is likely additional logging output above\.$/, "")}\n${runtimeErrors.join("\n")}`;
  }
  reply({ ready: false, error });
  process.exit(1);
}
