#!/usr/bin/env bash
# Scan-speed benchmark of `kvchaos audit scan`: generates a synthetic Worker repository of
# about 100,000 lines of TypeScript (handlers, helpers taking the namespace as a parameter,
# aliases, loops, lookalikes) and times one scan pinned to one core with GNU time.
# Usage: benches/audit.sh [LINES]   (default 100000; needs taskset and /usr/bin/time: apt-get install time)
# Target: under 1 s of wall time for 100,000 lines on one core.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lines="${1:-100000}"
bin="${KVCHAOS:-$here/../target/release/kvchaos}"
if [[ ! -x "$bin" ]]; then
  (cd "$here/.." && cargo build --release --bin kvchaos)
fi
repo="$(mktemp -d)"
trap 'rm -rf "$repo"' EXIT
python3 - "$repo" "$lines" <<'PY'
import os, sys
root, total = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{root}/src/lib", exist_ok=True)
open(f"{root}/wrangler.toml", "w").write('''name = "bench"
main = "src/index.ts"
[[kv_namespaces]]
binding = "KV"
id = "1"
[[kv_namespaces]]
binding = "CACHE"
id = "2"
[[r2_buckets]]
binding = "BUCKET"
bucket_name = "b"
[triggers]
crons = ["*/5 * * * *"]
''')
block = '''
export async function handler{n}(env: Env, id: string): Promise<string | null> {{
  const kv = env.KV;
  const {{ CACHE }} = env;
  const hit = await CACHE.get(`page:{n}:${{id}}`);
  if (hit) return hit;
  const lock = await kv.get(`lock:{n}:${{id}}`);
  if (!lock) await kv.put(`lock:{n}:${{id}}`, "1", {{ expirationTtl: 60 }});
  for (const k of ["a", "b", "c"]) {{
    await helper{n}(env.KV, `queue:{n}:${{k}}`);
  }}
  const m = new Map<string, number>();
  m.set(id, 1);
  m.get(id);
  await env.BUCKET.put(`obj:{n}`, "x");
  const headers = new Headers({{ "x-id": id }});
  headers.get("x-id");
  let total = 0;
  for (let i = 0; i < 10; i++) {{
    total += i * {n};
  }}
  return String(total);
}}

async function helper{n}(ns: KVNamespace, key: string): Promise<void> {{
  const v = await ns.get(key);
  await ns.put(key, String(Number(v ?? 0) + 1));
}}
'''
per_block = block.count("\n")
files, n, written = 0, 0, 0
while written < total:
    path = f"{root}/src/lib/mod{files}.ts"
    with open(path, "w") as f:
        f.write("interface Env { KV: KVNamespace; CACHE: KVNamespace; BUCKET: R2Bucket }\n")
        for _ in range(20):
            f.write(block.format(n=n))
            n += 1
            written += per_block
    files += 1
with open(f"{root}/src/index.ts", "w") as f:
    for i in range(files):
        f.write(f'import * as m{i} from "./lib/mod{i}";\n')
    f.write("export default {\n  async fetch(req: Request, env: any) {\n")
    for i in range(files):
        f.write(f'    await m{i}.handler{i * 20}(env, "x");\n')
    f.write('    return new Response("ok");\n  },\n};\n')
print(f"generated {written} lines in {files + 1} files", file=sys.stderr)
PY
echo "scanning $(cat "$repo"/src/lib/*.ts "$repo"/src/index.ts | wc -l) lines with $bin (taskset -c 0)"
taskset -c 0 /usr/bin/time -v "$bin" audit scan --root "$repo" --format json -o "$repo/audit.json" 2> "$repo/time.txt" || { cat "$repo/time.txt"; exit 1; }
grep -E "Elapsed \(wall clock\)|Maximum resident|User time|System time" "$repo/time.txt"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{r['lines_scanned']} lines, {r['files_scanned']} files, {r['totals']['total']} KV call sites\")" "$repo/audit.json"
