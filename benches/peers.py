"""Peer benchmark driver (see peers.sh).

Starts one fast HTTP server on 127.0.0.1 (nginx if installed, else kvchaos's built-in server),
pins it to one core and the load generator to another when taskset is available, then runs
kvchaos and, where installed, wrk and oha with the same settings:

  closed   N connections back to back for D seconds            (kvchaos vus=N, wrk -cN, oha -cN)
  open     open loop at --open-rate req/s, N*2 in flight        (kvchaos rate, oha -q --latency-correction)
  paced    open loop at --paced-rate req/s (CPU per request)    (kvchaos rate, oha -q --latency-correction)
  openmax  the open-loop maximum: the highest rate kvchaos sustains with < 1% dropped, searched by
           bisection in --search-steps runs of --search-duration seconds (compared with wrk's
           closed-loop rate)
  mockkv   the mock Workers KV (kvchaos mock-kv) under kvchaos: binding-protocol ops/s on one core
           (closed loop, 80% get / 20% put) and p99 at --mockkv-rate ops/s
  tui      the dashboard's cost: kvchaos closed loop on a pseudo-terminal of --tui-size, with the
           dashboard (10 frames/s) and with --no-tui, alternately --tui-reps times each; reports
           the median req/s and CPU per request of each and their ratio (not part of the default)

Each generator's user+system CPU time and peak RSS come from wait4() on that process alone.
All traffic goes to 127.0.0.1; every run is bounded by its duration.
"""

import argparse
import fcntl
import json
import os
import pty
import re
import statistics
import struct
import termios
import threading
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"server on 127.0.0.1:{port} did not start within {timeout}s")


def pin(cpu):
    if shutil.which("taskset") and os.cpu_count() and os.cpu_count() >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


TIME = "/usr/bin/time"


def run_tool(cmd, timeout):
    """Runs cmd; returns (stdout, cpu_s, peak_rss_kib) of that process alone.

    Measured by GNU time (apt-get install time), whose child is forked from a tiny process:
    ru_maxrss survives exec, so a child forked straight from this Python process would report
    Python's own size. Output goes to files, so a chatty tool never blocks on a full pipe."""
    if not os.path.exists(TIME):
        sys.exit("GNU time not found: apt-get install time")
    with tempfile.TemporaryDirectory() as d:
        res = os.path.join(d, "rusage")
        full = [TIME, "-q", "-o", res, "-f", "%U %S %M"] + cmd
        with open(os.path.join(d, "out"), "w+") as out, open(os.path.join(d, "err"), "w+") as err:
            try:
                rc = subprocess.run(full, stdout=out, stderr=err, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                sys.exit(f"{' '.join(cmd)} did not finish within {timeout}s")
            out.seek(0)
            err.seek(0)
            text, errtext = out.read(), err.read()
        with open(res) as f:
            fields = f.read().split()[-3:]
    if rc not in (0, 1) or not text.strip():
        sys.exit(f"{' '.join(cmd)} failed (exit {rc}):\n{errtext[-2000:]}")
    user, system, rss = float(fields[0]), float(fields[1]), int(fields[2])
    return text, user + system, rss


def run_pty(cmd, timeout, cols, rows):
    """Runs cmd with stdin, stdout and stderr on a new pseudo-terminal of cols x rows, draining
    what it draws; returns (bytes drawn, cpu_s, peak_rss_kib), measured like run_tool."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    drawn = [0]

    def drain():
        while True:
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO once every writer has closed the terminal
                return
            if not data:
                return
            drawn[0] += len(data)

    with tempfile.TemporaryDirectory() as d:
        res = os.path.join(d, "rusage")
        full = [TIME, "-q", "-o", res, "-f", "%U %S %M"] + cmd
        p = subprocess.Popen(full, stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            sys.exit(f"{' '.join(cmd)} did not finish within {timeout}s")
        reader.join(timeout=10)
        os.close(master)
        with open(res) as f:
            fields = f.read().split()[-3:]
    if rc not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed under a pseudo-terminal (exit {rc})")
    return drawn[0], float(fields[0]) + float(fields[1]), int(fields[2])


def tui_bench(binary, url, args, tmp):
    """kvchaos closed loop with and without the dashboard, both on a pseudo-terminal."""
    cols, rows = (int(x) for x in args.tui_size.split("x"))
    scen = os.path.join(tmp, "bench-tui.toml")
    with open(scen, "w") as f:
        f.write(
            f'name = "bench-tui"\nseed = 1\ngrace = "2s"\n[target]\nurl = "{url}"\n'
            f'[[phases]]\nduration = "{args.duration}s"\nvus = {args.connections}\n'
            f'[[requests]]\nname = "get"\npath = "/"\ntimeout = "5s"\n'
        )
    out_dir = os.path.join(tmp, "reports-tui")
    results = {"no-tui": [], "tui": []}
    for _ in range(args.tui_reps):
        for variant in ("no-tui", "tui"):
            before = set(os.listdir(out_dir)) if os.path.isdir(out_dir) else set()
            cmd = pin(0) + [binary, "run", scen, "--threads", "1", "--out", out_dir]
            if variant == "no-tui":
                cmd.append("--no-tui")
            drawn, cpu, _ = run_pty(cmd, args.duration + 60, cols, rows)
            new = sorted(set(os.listdir(out_dir)) - before)
            with open(os.path.join(out_dir, new[-1], "summary.json")) as f:
                o = json.load(f)["overall"]
            results[variant].append({"rps": o["rps"], "cpu_us": cpu * 1e6 / max(o["completed"], 1),
                                     "drawn": drawn / args.duration})
    print(f"\ndashboard cost (kvchaos closed loop, {args.connections} connections, generator on CPU 0, "
          f"{cols}x{rows} pseudo-terminal, {args.duration}s x {args.tui_reps} runs each, medians)")
    med = {}
    for variant, runs in results.items():
        med[variant] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        m = med[variant]
        each = " ".join(f"{r['rps']:.0f}" for r in runs)
        print(f"  {variant:7} {m['rps']:>9.0f} req/s  CPU {m['cpu_us']:.2f} µs/req  "
              f"terminal output {m['drawn'] / 1024:.1f} KiB/s   (runs: {each})")
    ratio = med["tui"]["rps"] / med["no-tui"]["rps"]
    print(f"  req/s with the dashboard / without: {ratio:.3f} ({100 * (1 - ratio):+.1f}% cost)  "
          f"CPU/req {med['tui']['cpu_us'] / med['no-tui']['cpu_us']:.3f}x")


def us(s):
    """'1.23ms' / '850.00us' / '1.2s' -> microseconds."""
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def kvchaos(binary, url, mode, args, tmp, rate=None, duration=None):
    d = duration or args.duration
    if mode == "closed":
        load = f"vus = {args.connections}"
    elif mode == "open":
        load = f"rate = {rate or args.open_rate}\nmax_in_flight = {args.connections * 2}"
    else:
        load = f"rate = {args.paced_rate}\nmax_in_flight = {args.connections}"
    scen = os.path.join(tmp, f"bench-{mode}.toml")
    with open(scen, "w") as f:
        f.write(
            f'name = "bench-{mode}"\nseed = 1\ngrace = "2s"\n[target]\nurl = "{url}"\n'
            f'[[phases]]\nduration = "{d}s"\n{load}\n'
            f'[[requests]]\nname = "get"\npath = "/"\ntimeout = "5s"\n'
        )
    out_dir = os.path.join(tmp, "reports")
    before = set(os.listdir(out_dir)) if os.path.isdir(out_dir) else set()
    cmd = pin(0) + [binary, "run", scen, "--no-tui", "--threads", "1", "--out", out_dir]
    _, cpu, rss = run_tool(cmd, d + 60)
    new = sorted(set(os.listdir(out_dir)) - before)
    with open(os.path.join(out_dir, new[-1], "summary.json")) as f:
        s = json.load(f)
    o = s["overall"]
    lat = o["corrected"]
    n = o["completed"]
    return {
        "rps": o["rps"], "n": n, "dropped": o["dropped"],
        "p50": lat["p50_us"], "p99": lat["p99_us"],
        "svc_p50": o["service"]["p50_us"], "svc_p99": o["service"]["p99_us"],
        "errors": o["errors"], "cpu_us": cpu * 1e6 / max(n, 1), "rss": rss,
    }


def open_max(binary, url, args, tmp, start):
    """Bisects the open-loop rate kvchaos sustains with < 1% dropped; returns (rate, row)."""
    ok, ok_row, bad = 0, None, None
    rate = int(start)
    for _ in range(args.search_steps):
        r = kvchaos(binary, url, "open", args, tmp, rate=rate, duration=args.search_duration)
        sched = r["n"] + r["dropped"]
        frac = r["dropped"] / max(sched, 1)
        print(f"  open-loop search: {rate} req/s -> {100 * frac:.2f}% dropped, "
              f"harness lag {fmt_us(r['p50'] - r['svc_p50'])}", file=sys.stderr)
        if frac < 0.01:
            ok, ok_row = rate, r
            rate = int(rate * 1.25) if bad is None else (rate + bad) // 2
        else:
            bad = rate
            rate = (ok + bad) // 2
        if bad is not None and bad - ok <= max(ok // 50, 100):
            break
    return ok, ok_row


def wrk(url, args):
    cmd = pin(0) + ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency", url]
    out, cpu, rss = run_tool(cmd, args.duration + 60)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    n = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = us(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = us(re.search(r"99%\s+(\S+)", out).group(1))
    return {"rps": rps, "n": n, "dropped": 0, "p50": p50, "p99": p99, "errors": 0,
            "cpu_us": cpu * 1e6 / max(n, 1), "rss": rss}


def oha(url, mode, args):
    conns = args.connections * 2 if mode == "open" else args.connections
    cmd = pin(0) + ["oha", "--no-tui", "--output-format", "json", "-c", str(conns),
                    "-z", f"{args.duration}s"]
    if mode == "open":
        cmd += ["-q", str(args.open_rate), "--latency-correction"]
    elif mode == "paced":
        cmd += ["-q", str(args.paced_rate), "--latency-correction"]
    cmd.append(url)
    out, cpu, rss = run_tool(cmd, args.duration + 60)
    j = json.loads(out)
    summ = j["summary"]
    n = sum(j.get("statusCodeDistribution", {}).values())
    pct = j.get("latencyPercentiles", {})
    return {"rps": summ["requestsPerSec"], "n": n, "dropped": 0,
            "p50": (pct.get("p50") or 0) * 1e6, "p99": (pct.get("p99") or 0) * 1e6,
            "errors": sum(j.get("errorDistribution", {}).values()),
            "cpu_us": cpu * 1e6 / max(n, 1), "rss": rss}


def mockkv_bench(binary, args, tmp):
    """kvchaos against `kvchaos mock-kv` (paid plan, no same-key limit), mock on CPU 1."""
    p = subprocess.Popen(pin(1) + [binary, "mock-kv", "--listen", "127.0.0.1:0", "--plan", "paid",
                                   "--no-same-key-limit"], stdout=subprocess.PIPE, text=True)
    addr = p.stdout.readline().strip()
    if not addr:
        sys.exit("kvchaos mock-kv did not print its address")
    url = f"http://{addr}/"
    mix = ('[[requests]]\nname = "get"\nweight = 4\npath = "/k{{random_key 10000}}?urlencoded=true"\n'
           '[[requests]]\nname = "put"\nweight = 1\nmethod = "PUT"\n'
           'path = "/k{{random_key 10000}}?urlencoded=true"\nbody = "value-{{seq}}"\n')
    rows = []
    try:
        for mode, load in (("closed", f"vus = {args.connections}"),
                           ("paced", f"rate = {args.mockkv_rate}\nmax_in_flight = {args.connections}")):
            scen = os.path.join(tmp, f"mockkv-{mode}.toml")
            with open(scen, "w") as f:
                f.write(f'name = "mockkv-{mode}"\nseed = 1\n[target]\nurl = "{url}"\n'
                        f'[[phases]]\nduration = "{args.duration}s"\n{load}\n{mix}')
            out_dir = os.path.join(tmp, "reports-mockkv")
            before = set(os.listdir(out_dir)) if os.path.isdir(out_dir) else set()
            run_tool(pin(0) + [binary, "run", scen, "--no-tui", "--threads", "1", "--out", out_dir],
                     args.duration + 60)
            new = sorted(set(os.listdir(out_dir)) - before)
            with open(os.path.join(out_dir, new[-1], "summary.json")) as f:
                s = json.load(f)
            rows.append((mode, s))
    finally:
        p.terminate()
        p.wait(timeout=10)
    print(f"\nmock KV (kvchaos mock-kv on CPU 1, kvchaos generator on CPU 0, {args.duration}s per run)")
    for mode, s in rows:
        o = s["overall"]
        bad = {k: v for k, v in o["by_class"].items() if k not in ("2xx", "4xx")}
        label = "closed loop, max ops/s" if mode == "closed" else f"open loop at {args.mockkv_rate} ops/s"
        print(f"  {label:28} {o['rps']:>9.0f} ops/s  p50 {fmt_us(o['service']['p50_us'])} "
              f"p99 {fmt_us(o['service']['p99_us'])} (service)  p99 {fmt_us(o['corrected']['p99_us'])} "
              f"(corrected)  dropped {o['dropped']}  failures {sum(bad.values())}")


def start_server(kind, binary, tmp):
    if kind in ("auto", "nginx") and shutil.which("nginx"):
        port = free_port()
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1; daemon off; master_process off;
pid {tmp}/nginx.pid; error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off; keepalive_requests 100000000; keepalive_timeout 120s;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}
}}
""")
        p = subprocess.Popen(pin(1) + ["nginx", "-p", tmp, "-c", conf], stderr=subprocess.DEVNULL)
        wait_listening(port)
        return p, f"http://127.0.0.1:{port}/", "nginx"
    if kind == "nginx":
        sys.exit("nginx not found: apt-get install nginx-light, or --server builtin")
    p = subprocess.Popen(pin(1) + [binary, "builtin-server", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, text=True)
    addr = p.stdout.readline().strip()
    if not addr:
        sys.exit("kvchaos builtin-server did not print its address")
    return p, f"http://{addr}/", "kvchaos builtin-server"


def fmt_us(v):
    if v is None:
        return "-"
    return f"{v:.0f}µs" if v < 1000 else f"{v / 1000:.2f}ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--open-rate", type=int, default=80000)
    ap.add_argument("--paced-rate", type=int, default=5000)
    ap.add_argument("--server", choices=["auto", "nginx", "builtin"], default="auto")
    ap.add_argument("--kvchaos", default=os.path.join(ROOT, "target", "release", "kvchaos"))
    ap.add_argument("--mockkv-rate", type=int, default=10000)
    ap.add_argument("--modes", default="closed,open,paced,openmax,mockkv",
                    help="comma-separated: closed, open, paced, mockkv, tui")
    ap.add_argument("--tui-size", default="160x48", help="tui mode: terminal COLSxROWS")
    ap.add_argument("--tui-reps", type=int, default=3, help="tui mode: runs of each variant")
    ap.add_argument("--search-duration", type=int, default=5, help="openmax: seconds per try")
    ap.add_argument("--search-steps", type=int, default=7, help="openmax: at most this many tries")
    args = ap.parse_args()
    if not os.path.exists(args.kvchaos):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="kvchaos-bench-")
    server, url, server_name = start_server(args.server, args.kvchaos, tmp)
    rows = []
    found = None
    try:
        modes = args.modes.split(",")
        for mode in modes:
            if mode == "tui":
                tui_bench(args.kvchaos, url, args, tmp)
                continue
            if mode == "mockkv":
                continue
            if mode == "openmax":
                ref = next((r["rps"] for m, t, r in rows if m == "closed"), args.open_rate)
                found = open_max(args.kvchaos, url, args, tmp, ref)
                continue
            rows.append((mode, "kvchaos", kvchaos(args.kvchaos, url, mode, args, tmp)))
            if mode == "closed" and shutil.which("wrk"):
                rows.append((mode, "wrk", wrk(url, args)))
            if shutil.which("oha"):
                rows.append((mode, "oha", oha(url, mode, args)))
        server.terminate()
        server.wait(timeout=10)
        if "mockkv" in modes:
            mockkv_bench(args.kvchaos, args, tmp)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    pinned = "generator on CPU 0, server on CPU 1" if pin(0) else "no pinning (taskset missing or 1 CPU)"
    if not rows:
        return
    print(f"\nserver: {server_name}; {pinned}; {args.connections} connections; {args.duration}s per run")
    print(f"{'mode':7} {'tool':8} {'req/s':>10} {'p50':>9} {'p99':>9} {'dropped':>8} {'errors':>7} {'CPU µs/req':>11} {'peak RSS':>9}")
    for mode, tool, r in rows:
        print(f"{mode:7} {tool:8} {r['rps']:>10.0f} {fmt_us(r['p50']):>9} {fmt_us(r['p99']):>9} "
              f"{r['dropped']:>8} {r['errors']:>7} {r['cpu_us']:>11.2f} {r['rss'] / 1024:>7.1f}Mi")
    print("\nratios kvchaos/peer (req/s: higher is better; CPU and RSS: lower is better)")
    for mode in [m for m in args.modes.split(",") if m not in ("mockkv", "tui")]:
        k = next((r for m, t, r in rows if m == mode and t == "kvchaos"), None)
        for m, tool, r in rows:
            if m == mode and tool != "kvchaos" and k:
                print(f"  {mode:7} vs {tool:4}: req/s {k['rps'] / r['rps']:.2f}x  "
                      f"CPU/req {k['cpu_us'] / r['cpu_us']:.2f}x  peak RSS {k['rss'] / r['rss']:.2f}x")
        if k and mode == "open":
            sched = k["n"] + k["dropped"]
            print(f"  open: kvchaos dropped {k['dropped']} of {sched} ({100 * k['dropped'] / max(sched, 1):.2f}%)")
        if k and mode in ("open", "paced"):
            # What the generator adds to every corrected latency: its own lateness in sending.
            print(f"  {mode:7} harness lag (kvchaos corrected p50 - service p50): "
                  f"{fmt_us(k['p50'] - k['svc_p50'])}")
    if found is not None:
        rate, r = found
        w = next((r2["rps"] for m, t, r2 in rows if m == "closed" and t == "wrk"), None)
        vs = f", {rate / w:.2f}x wrk's closed-loop rate" if w else ""
        lag = f", harness lag {fmt_us(r['p50'] - r['svc_p50'])}, p99 {fmt_us(r['p99'])}" if r else ""
        print(f"  open-loop maximum with < 1% dropped: {rate} req/s{vs}{lag}")
    print(f"  machine load at the end: {os.getloadavg()[0]:.2f} (1-minute average)")


if __name__ == "__main__":
    main()
