#!/usr/bin/env node
// kvchaos's local Worker launcher: runs one Worker under miniflare (the real
// workerd runtime) with its KV bindings routed to kvchaos's mock KV.
//
// Usage:
//   node launch.mjs --worker DIR [--kv-address 127.0.0.1:PORT | --no-kv-routing]
//                   [--persist DIR] [--scratch DIR]
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
// apply --local` does, so a persisted state is not migrated twice. Only plain JavaScript module Workers are
// supported (no TypeScript or bundling step): the `main` module and the
// modules next to it are loaded as they are.
//
// Protocol (one JSON object per line):
//   stdout, once:  {"ready":true,"url":"http://127.0.0.1:PORT",
//                   "kv_bindings":[{"binding","id","namespace"}],"crons":[...]}
//              or  {"ready":false,"error":"..."} and exit code 1.
//   stdin → stdout:
//     {"cmd":"scheduled","cron":"*/1 * * * *","scheduledTime":MS}
//        → {"ok":true,"outcome":"ok"|"exception"}
//     {"cmd":"stop"} → miniflare disposed, exit 0 (stdin EOF does the same).
//   Anything that is not valid answers {"ok":false,"error":"..."}.
// Everything else (the Worker's console, miniflare's log) goes to stderr.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

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
  const args = { worker: null, kvAddress: null, kvRouting: true, persist: null, scratch: null };
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
      case "--persist": args.persist = value(); break;
      case "--scratch": args.scratch = value(); break;
      default: throw new UsageError(`unknown argument '${a}'`);
    }
  }
  if (!args.worker) throw new UsageError("missing --worker DIR");
  if (args.scratch) {
    const scratch = path.resolve(args.scratch);
    process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));
  }
  if (args.kvRouting && !args.kvAddress) {
    throw new UsageError("missing --kv-address 127.0.0.1:PORT (or pass --no-kv-routing)");
  }
  if (!args.kvRouting && args.kvAddress) {
    throw new UsageError("--kv-address and --no-kv-routing exclude each other");
  }
  if (args.kvAddress && !/^127\.0\.0\.1:\d{1,5}$|^\[::1\]:\d{1,5}$|^localhost:\d{1,5}$/.test(args.kvAddress)) {
    throw new UsageError(`invalid --kv-address '${args.kvAddress}': expected a loopback address, e.g. 127.0.0.1:8787`);
  }
  return args;
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
  const configPath = findConfig(workerDir);
  const { workerOptions, main } = unstable_getMiniflareWorkerOptions(configPath);
  if (!main) throw new UsageError(`'${configPath}' names no main module`);
  if (!/\.(m?js)$/.test(main)) {
    throw new UsageError(`main module '${main}' is not plain JavaScript: only .js/.mjs Workers are supported`);
  }

  const kv = kvEntries(workerOptions.kvNamespaces);
  const kvBindings = kv.map(([binding, id]) => ({ binding, id, namespace: binding }));
  const opts = { ...workerOptions };
  if (args.kvRouting) {
    delete opts.kvNamespaces;
    opts.unsafeBindings = [
      ...(opts.unsafeBindings ?? []),
      ...kvBindings.map((b) => ({
        name: b.binding,
        type: "kvchaos-kv",
        plugin: { package: PLUGIN_PATH, name: "kvchaos-kv" },
        options: { address: args.kvAddress, namespace: b.namespace },
      })),
    ];
  }
  // Miniflare never fires crons itself; kvchaos fires them through stdin. Read them from the
  // config itself: not every wrangler release puts them in the worker options.
  const crons = unstable_readConfig({ config: configPath }).triggers?.crons ?? workerOptions.cronTriggers ?? [];

  const persistRoot = args.persist ?? mkdtempSync(path.join(tmpdir(), "kvchaos-miniflare-"));
  const ownsPersist = args.persist === null;
  if (ownsPersist) {
    // "exit" handlers run on every process.exit, including miniflare's own
    // on SIGINT/SIGTERM (it kills workerd there and exits at once).
    process.on("exit", () => rmSync(persistRoot, { recursive: true, force: true }));
  }
  console.error(`kvchaos launcher: D1/DO state in ${persistRoot}`);

  const mf = new Miniflare({
    ...opts,
    name: opts.name ?? "worker",
    modules: true,
    scriptPath: main,
    modulesRoot: path.dirname(main),
    modulesRules: [{ type: "ESModule", include: ["**/*.js", "**/*.mjs"] }],
    host: "127.0.0.1",
    port: 0,
    cf: false,
    defaultPersistRoot: persistRoot,
    kvPersist: args.kvRouting ? undefined : path.join(persistRoot, "kv"),
    d1Persist: path.join(persistRoot, "d1"),
    durableObjectsPersist: path.join(persistRoot, "do"),
    handleRuntimeStdio(stdout, stderr) {
      stdout.pipe(process.stderr);
      stderr.pipe(process.stderr);
    },
  });
  const url = await mf.ready;
  await applyD1Migrations(mf, configPath, splitSql);
  return { mf, url, kvBindings, crons, persistRoot, ownsPersist };
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
          const r = await worker.scheduled({ cron: cmd.cron, scheduledTime });
          reply({ ok: true, outcome: r.outcome });
          break;
        }
        case "stop":
          await stop(0);
          break;
        default:
          reply({ ok: false, error: `unknown command '${cmd.cmd}': expected scheduled or stop` });
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
  reply({ ready: true, url: run.url.origin, kv_bindings: run.kvBindings, crons: run.crons });
  await serveCommands(run);
} catch (e) {
  console.error(e?.stack ?? e);
  reply({ ready: false, error: String(e?.message ?? e) });
  process.exit(1);
}
