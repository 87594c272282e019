#!/usr/bin/env node
// kvchaos's local Worker launcher: runs one Worker under miniflare (the real
// workerd runtime) with its KV bindings routed to kvchaos's mock KV.
//
// Usage:
//   node launch.mjs --worker DIR [--kv-address 127.0.0.1:PORT | --no-kv-routing]
//                   [--kv-binding workerd|wrapped] [--bundle auto|always|never]
//                   [--persist DIR] [--scratch DIR]
//
// --kv-binding workerd (default): each KV binding is workerd's own KV class
// backed by the mock. --kv-binding wrapped: each is a small JS wrapper
// (`kv-wrapper.worker.mjs`) over a service binding to the mock, which throws
// a daily-limit refusal with the exact text a deployed Worker sees
// (`KV put() limit exceeded for the day.`, without workerd's
// `KV PUT failed: 429 ` prefix).
//
// --bundle auto (default): bundle the Worker with esbuild (wrangler's own
// copy) when its `main` is TypeScript or JSX (.ts/.tsx/.mts/.cts/.jsx), or
// when a JavaScript `main` (or a module it imports relatively) imports a
// bare specifier such as an npm package; otherwise load the modules as they
// are, so that stack traces name the real source files. `no_bundle = true`
// in the config, or --bundle never, never bundles; --bundle always always
// does. The bundle (ESM, conditions workerd/worker/browser, `cloudflare:*`
// and `node:*` left external) is written with a source map to a temporary
// directory removed on exit.
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
//                   "kv_binding":"workerd"|"wrapped"|"miniflare","bundled":BOOL}
//              or  {"ready":false,"error":"..."} and exit code 1.
//   stdin → stdout:
//     {"cmd":"scheduled","cron":"*/1 * * * *","scheduledTime":MS}
//        → {"ok":true,"outcome":"ok"|"exception"}
//     {"cmd":"stop"} → miniflare disposed, exit 0 (stdin EOF does the same).
//   Anything that is not valid answers {"ok":false,"error":"..."}.
// Everything else (the Worker's console, miniflare's log) goes to stderr.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
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
  const args = {
    worker: null,
    kvAddress: null,
    kvRouting: true,
    kvBinding: "workerd",
    bundle: "auto",
    persist: null,
    scratch: null,
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
  const config = unstable_readConfig({ config: configPath });
  const persistRoot = args.persist ?? mkdtempSync(path.join(tmpdir(), "kvchaos-miniflare-"));
  const ownsPersist = args.persist === null;
  if (ownsPersist) {
    // "exit" handlers run on every process.exit, including miniflare's own
    // on SIGINT/SIGTERM (it kills workerd there and exits at once).
    process.on("exit", () => rmSync(persistRoot, { recursive: true, force: true }));
  }
  console.error(`kvchaos launcher: D1/DO state in ${persistRoot}`);

  const why = bundleReason(args.bundle, config, main);
  let script = { scriptPath: main, modulesRoot: path.dirname(main) };
  if (why) {
    const began = Date.now();
    script = await bundle(main, workerOptions.compatibilityFlags ?? [], config.define ?? {});
    console.error(`kvchaos launcher: bundled ${main} (${why}) in ${Date.now() - began} ms`);
  } else if (!/\.(m?js)$/.test(main)) {
    throw new UsageError(`main module '${main}' is not JavaScript and bundling is off (--bundle never or no_bundle)`);
  }

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
  return { mf, url, kvBindings, crons, persistRoot, ownsPersist, bundled: Boolean(why) };
}

const BUNDLED_EXTENSIONS = /\.(ts|tsx|mts|cts|jsx)$/;
const IMPORT_SPECIFIERS = [
  /\bimport\s*(?:[\w*${}\s,]+from\s*)?["']([^"']+)["']/g,
  /\bexport\s*[\w*${}\s,]*from\s*["']([^"']+)["']/g,
  /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
];

/** Why the Worker needs bundling, or null when its modules load as they are. */
function bundleReason(mode, config, main) {
  if (mode === "never" || (mode === "auto" && config.no_bundle === true)) return null;
  if (mode === "always") return "--bundle always";
  if (BUNDLED_EXTENSIONS.test(main)) return `main is ${path.extname(main)}`;
  const bare = bareImport(main);
  return bare ? `imports '${bare}'` : null;
}

/**
 * The first bare import specifier (not relative, absolute, `cloudflare:` or
 * `node:`) in `main` or the modules it imports relatively. A scan with
 * regular expressions: it can see an import inside a comment or string,
 * which only means an unneeded bundle; --bundle never overrides it.
 */
function bareImport(main) {
  const seen = new Set();
  const todo = [main];
  while (todo.length > 0) {
    const file = todo.pop();
    if (seen.has(file) || !existsSync(file)) continue;
    seen.add(file);
    const src = readFileSync(file, "utf8");
    for (const re of IMPORT_SPECIFIERS) {
      for (const m of src.matchAll(re)) {
        const spec = m[1];
        if (spec.startsWith(".") || spec.startsWith("/")) {
          todo.push(path.resolve(path.dirname(file), spec));
        } else if (!/^(cloudflare|node|workerd):/.test(spec)) {
          return spec;
        }
      }
    }
  }
  return null;
}

/**
 * Bundle `main` with wrangler's esbuild into one ES module (plus source map)
 * in a temporary directory; the miniflare script options for it.
 */
async function bundle(main, compatibilityFlags, define) {
  // esbuild is wrangler's dependency, not ours: resolve it from wrangler.
  const requireFromWrangler = createRequire(createRequire(import.meta.url).resolve("wrangler"));
  const esbuild = requireFromWrangler("esbuild");
  const outdir = mkdtempSync(path.join(tmpdir(), "kvchaos-bundle-"));
  process.on("exit", () => rmSync(outdir, { recursive: true, force: true }));
  const nodeCompat = compatibilityFlags.some((f) => f.startsWith("nodejs_compat"));
  const outfile = path.join(outdir, "index.js");
  try {
    await esbuild.build({
      entryPoints: [main],
      outfile,
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      conditions: ["workerd", "worker", "browser"],
      // platform neutral has no main fields: take npm packages' browser/ESM builds.
      mainFields: ["browser", "module", "main"],
      external: ["cloudflare:*", "node:*", ...(nodeCompat ? builtinModules : [])],
      define,
      loader: { ".txt": "text", ".html": "text", ".bin": "binary" },
      sourcemap: true,
      logLevel: "silent",
      absWorkingDir: path.dirname(main),
    });
  } catch (e) {
    const messages = (e.errors ?? []).map((m) =>
      m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ${m.text}` : m.text,
    );
    throw new Error(`bundling '${main}' with esbuild failed: ${messages.join("; ") || e.message}`);
  }
  return { scriptPath: outfile, modulesRoot: outdir };
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
  reply({
    ready: true,
    url: run.url.origin,
    kv_bindings: run.kvBindings,
    crons: run.crons,
    kv_binding: args.kvRouting ? args.kvBinding : "miniflare",
    bundled: run.bundled,
  });
  await serveCommands(run);
} catch (e) {
  console.error(e?.stack ?? e);
  reply({ ready: false, error: String(e?.message ?? e) });
  process.exit(1);
}
