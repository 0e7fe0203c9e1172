"""Benchmark: the API under load on loopback, and a scoring run started during that load.

1. Project (not timed; reused when `bench/.work/api/` already holds one of the same size
   and seed): the seeded sample world, the three models trained and promoted, one
   published scoring run, a `propensity.toml` and an auditor token.
2. Server: `propensity serve` as users start it (one process, access log on), in a
   child process on 127.0.0.1.
3. Load (the measurement): a small asyncio HTTP/1.1 client in this process, `--concurrency`
   keep-alive connections sharing `--requests` requests, each waiting for its answer
   before sending the next (closed loop). GET /customers/{id} over random customers of
   the run, against a baseline in the same run: GET /me (token check and a tiny JSON
   answer: what the framework alone costs). The two take turns `--repeat` times;
   medians of the per-round p50/p99 latency and requests per second, and their ratios.
   Plus one client alone (latency without queueing) and POST /targets idle vs. under
   read load.
4. Scoring during load: `propensity score --as-of DATE` started while the clients keep
   the API busy (rounds of `--requests` until the scoring process ends). It must succeed
   (or wait, saying so) and never fail late; the API must go on answering (from the run
   it holds) and switch to the new run once it is published.

The client and the server share the machine's cores: numbers are for both on one box.

Run from the repository root::

    PYTHONPATH=. python bench/api.py                       # 20,000 customers, 5,000 requests x 20
    PYTHONPATH=. python bench/api.py --customers 50000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / ".work" / "api"
AS_OF = date(2025, 6, 1)  # the published run
RESCORE_AS_OF = date(2025, 6, 15)  # the run started under load


# -- the project -------------------------------------------------------------------------------

def _toml(folder: Path, threads: int) -> str:
    return (f'[warehouse]\nurl = "duckdb:///{folder / "warehouse.duckdb"}"\nlock_wait_seconds = 120\n\n'
            f'[mlflow]\ntracking_uri = "sqlite:///{folder / "mlruns" / "mlflow.db"}"\n'
            f'artifact_location = "{folder / "mlruns" / "artifacts"}"\n\n'
            f'[lightgbm]\nnum_threads = {threads}\n\n[serving]\nsnapshot_dir = "{folder / "scoring"}"\n')


def prepare(folder: Path, customers: int, seed: int, threads: int) -> dict:
    """The scored project (built once per size and seed) and a fresh auditor token."""
    marker = folder / "built.json"
    wanted = {"customers": customers, "seed": seed}
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "propensity.toml").write_text(_toml(folder, threads))
        from features.load import Warehouse
        from features.synth import SynthConfig
        from features.synth_import import load_sample_world
        from propensity.config import load_config
        from serving.batch import run_scoring
        from training.pipeline import promote_models, train_and_log

        cfg = load_config(folder / "propensity.toml")
        started = time.perf_counter()
        print(f"building a {customers:,}-customer project in {folder} (once) ...", flush=True)
        with Warehouse(cfg.warehouse.url) as wh:
            load_sample_world(wh, SynthConfig(customers=customers, seed=seed))
            train_and_log(["churn", "response", "value"], wh, cfg)
            promote_models(["churn", "response", "value"], wh, cfg, margin=0.0, force=True)
            run_scoring(wh, cfg, AS_OF)
        print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
        marker.write_text(json.dumps(wanted))
    (folder / "propensity.toml").write_text(_toml(folder, threads))
    from features.load import Warehouse
    from serving.tokens import TokenStore

    store = TokenStore(folder / "api_tokens.json")
    for info in store.list():
        store.revoke(info.name)
    token = store.create("bench", "auditor")[1]
    admin = store.create("bench-admin", "admin")[1]
    with Warehouse(f"duckdb:///{folder / 'warehouse.duckdb'}", read_only=True) as wh:
        ids = wh.query("select customer_id from current_customer_scores order by customer_id")["customer_id"].tolist()
        campaign = str(wh.query("select campaign_id from campaigns order by start desc limit 1")["campaign_id"][0])
    return {"token": token, "admin": admin, "ids": ids, "campaign": campaign}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, port: int, log: Path, toml: Path | None = None,
                 source_root: Path | None = None) -> subprocess.Popen:
    """`propensity serve` on the project in `folder`, answering /health; from `source_root` when given."""
    cmd = [sys.executable, "-m", "propensity.cli", "serve", "--config", str(toml or folder / "propensity.toml"),
           "--port", str(port), "--token-file", str(folder / "api_tokens.json")]
    env = os.environ if source_root is None else {**os.environ, "PYTHONPATH": str(source_root)}
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=source_root or folder, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}); see {log}")
        try:
            status, _body = asyncio.run(_once(port, "GET", "/health", {}))
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the server did not answer within 120 s; see {log}")


# -- a small HTTP/1.1 client ---------------------------------------------------------------------

def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    if body or method == "POST":
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(v.split(":", 1)[1]) for v in lines[1:] if v.lower().startswith("content-length:")), None)
    if length is None:
        raise RuntimeError(f"no Content-Length in the answer to a request: {lines[0]}")
    return status, await reader.readexactly(length)


async def _once(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_request(method, path, headers, body))
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()


async def _load(port: int, paths: list[str], headers: dict[str, str], concurrency: int) -> dict:
    """Send every path once over `concurrency` keep-alive connections; latencies and status counts."""
    queue = iter(paths)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for path in queue:
                t = time.perf_counter()
                writer.write(_request("GET", path, headers))
                try:
                    status, _ = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError) as e:  # the server closed the connection
                    errors.append(type(e).__name__)
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(time.perf_counter() - t)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    return {"requests": len(paths), "answered": len(latencies), "wall_s": wall,
            "rps": len(latencies) / wall if wall else 0.0, "p50_ms": pct(0.50), "p90_ms": pct(0.90),
            "p99_ms": pct(0.99), "max_ms": ordered[-1] * 1000 if ordered else float("nan"),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "connection_errors": len(errors)}


def load(port: int, paths: list[str], token: str, concurrency: int) -> dict:
    return asyncio.run(_load(port, paths, {"Authorization": f"Bearer {token}"}, concurrency))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the measurements --------------------------------------------------------------------------

def post_target(port: int, admin: str, campaign: str) -> tuple[float, int]:
    body = json.dumps({"campaign": campaign, "top": 500}).encode()
    t = time.perf_counter()
    status, _ = asyncio.run(_once(port, "POST", "/targets", {"Authorization": f"Bearer {admin}"}, body))
    return time.perf_counter() - t, status


def target_under_load(port: int, info: dict, concurrency: int, requests: int) -> float:
    """Seconds one POST /targets takes while `concurrency` clients read customers."""
    import threading

    rng = random.Random(11)
    paths = [f"/customers/{rng.choice(info['ids'])}" for _ in range(requests)]
    result: dict = {}
    reader = threading.Thread(target=lambda: result.update(load(port, paths, info["token"], concurrency)))
    reader.start()
    time.sleep(0.5)
    seconds, status = post_target(port, info["admin"], info["campaign"])
    reader.join()
    if status != 200:
        raise SystemExit(f"POST /targets under load answered {status}")
    return seconds


def earlier_version(args: argparse.Namespace, folder: Path, info: dict) -> dict:
    """The same project served by another source tree (e.g. the previous release), fewer requests."""
    root = args.compare_root.resolve()
    toml = folder / "propensity-earlier.toml"
    toml.write_text(_toml(folder, args.threads).replace("lock_wait_seconds = 120\n", ""))
    port = _free_port()
    proc = start_server(folder, port, folder / "server-earlier.log", toml=toml, source_root=root)
    try:
        rng = random.Random(args.seed + 1)
        load(port, [f"/customers/{rng.choice(info['ids'])}" for _ in range(20)], info["token"], 1)  # warm
        single = load(port, [f"/customers/{rng.choice(info['ids'])}" for _ in range(args.compare_requests // 4)],
                      info["token"], 1)
        loaded = load(port, [f"/customers/{rng.choice(info['ids'])}" for _ in range(args.compare_requests)],
                      info["token"], args.concurrency)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"root": str(root), "commit": commit, "requests": args.compare_requests,
            "single_client": {k: single[k] for k in ("p50_ms", "p99_ms", "rps")},
            "customer": {k: loaded[k] for k in ("rps", "p50_ms", "p90_ms", "p99_ms")},
            "statuses": loaded["statuses"]}


def scoring_under_load(folder: Path, port: int, info: dict, concurrency: int, requests: int, seed: int) -> dict:
    """Start `propensity score` while the API is loaded; keep the load on until it ends."""
    exe = Path(sys.executable).parent / "propensity"
    log = folder / "score-under-load.log"
    rng = random.Random(seed)
    rounds: list[dict] = []
    # the load first: the scoring process then has to get the file from a busy API
    proc = None
    started = time.perf_counter()
    while True:
        paths = [f"/customers/{rng.choice(info['ids'])}" for _ in range(requests)]
        if proc is None:
            import threading

            box: dict = {}
            t = threading.Thread(target=lambda: box.update(load(port, paths, info["token"], concurrency)))
            t.start()
            time.sleep(0.3)
            proc = subprocess.Popen([str(exe), "score", "--as-of", str(RESCORE_AS_OF), "--config",
                                     str(folder / "propensity.toml")], stdout=log.open("w"),
                                    stderr=subprocess.STDOUT, cwd=folder)
            t.join()
            rounds.append(box)
        else:
            rounds.append(load(port, paths, info["token"], concurrency))
        if proc.poll() is not None or time.perf_counter() - started > 1800:
            break
    rc = proc.wait()
    score_seconds = time.perf_counter() - started
    text = log.read_text()
    # the API must switch to the new run once it is published
    switched = None
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 30:
        status, body = asyncio.run(_once(port, "GET", "/health", {}))
        if status == 200 and json.loads(body).get("as_of") == str(RESCORE_AS_OF):
            switched = time.perf_counter() - t0
            break
        time.sleep(0.1)
    statuses: dict[str, int] = {}
    for r in rounds:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    return {"rc": rc, "seconds": score_seconds, "waited": "waiting up to" in text,
            "error": next((line for line in text.splitlines() if line.startswith("error:")), None),
            "rounds": len(rounds), "requests": sum(r["answered"] for r in rounds), "statuses": statuses,
            "p99_ms_max": max(r["p99_ms"] for r in rounds), "p50_ms_median": statistics.median(r["p50_ms"] for r in rounds),
            "rps_median": statistics.median(r["rps"] for r in rounds),
            "connection_errors": sum(r["connection_errors"] for r in rounds), "switched_after_s": switched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000, help="size of the sample world (default 20,000)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--requests", type=int, default=5_000, help="requests per round (default 5,000)")
    parser.add_argument("--concurrency", type=int, default=20, help="keep-alive clients (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each endpoint, taking turns (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads of the scoring run (default 1)")
    parser.add_argument("--skip-scoring", action="store_true", help="leave out the scoring-under-load part")
    parser.add_argument("--compare-root", type=Path, default=None,
                        help="also serve the project from this source tree (e.g. a worktree of the previous "
                             "release) and measure GET /customers/{id} there, for a before/after in one run")
    parser.add_argument("--compare-requests", type=int, default=400,
                        help="requests against --compare-root under load (a quarter of them single-client)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "api.md")
    args = parser.parse_args()

    folder = WORK / f"c{args.customers}-s{args.seed}"
    info = prepare(folder, args.customers, args.seed, args.threads)
    port = _free_port()
    server = start_server(folder, port, folder / "server.log")
    try:
        rng = random.Random(args.seed)
        load(port, [f"/customers/{rng.choice(info['ids'])}" for _ in range(300)], info["token"], args.concurrency)
        rounds: dict[str, list[dict]] = {"customer": [], "me": []}
        cpu: dict[str, list[float]] = {"customer": [], "me": []}
        for i in range(args.repeat):
            for name in ("me", "customer") if i % 2 else ("customer", "me"):
                paths = ([f"/customers/{rng.choice(info['ids'])}" for _ in range(args.requests)] if name == "customer"
                         else ["/me"] * args.requests)
                before = _cpu_seconds(server.pid)
                result = load(port, paths, info["token"], args.concurrency)
                cpu[name].append((_cpu_seconds(server.pid) - before) / max(result["answered"], 1) * 1000)
                rounds[name].append(result)
                print(f"  {name:<8} round {i + 1}: {result['rps']:7.0f} rps  p50 {result['p50_ms']:6.1f} ms  "
                      f"p99 {result['p99_ms']:6.1f} ms  statuses {result['statuses']}", flush=True)
        single = load(port, [f"/customers/{rng.choice(info['ids'])}" for _ in range(500)], info["token"], 1)
        idle_target = sorted(post_target(port, info["admin"], info["campaign"])[0] for _ in range(3))[1]
        loaded_target = target_under_load(port, info, args.concurrency, args.requests)
        scoring = None if args.skip_scoring else scoring_under_load(folder, port, info, args.concurrency,
                                                                   args.requests, args.seed)
    finally:
        server.terminate()
        server.wait(timeout=30)
    before = None if args.compare_root is None else earlier_version(args, folder, info)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds[name])

    summary = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": _machine(),
        "args": {k: str(v) for k, v in vars(args).items()}, "customers": len(info["ids"]),
        "customer": {k: med("customer", k) for k in ("rps", "p50_ms", "p90_ms", "p99_ms")},
        "me": {k: med("me", k) for k in ("rps", "p50_ms", "p90_ms", "p99_ms")},
        "server_cpu_ms_per_request": {k: statistics.median(v) for k, v in cpu.items()},
        "statuses": {name: [r["statuses"] for r in rs] for name, rs in rounds.items()},
        "single_client": {k: single[k] for k in ("p50_ms", "p99_ms", "rps")},
        "post_target_idle_s": idle_target, "post_target_under_load_s": loaded_target, "scoring": scoring,
        "earlier": before,
    }
    summary["targets_met"] = {"p99_le_50ms": summary["customer"]["p99_ms"] <= 50,
                              "rps_ge_300": summary["customer"]["rps"] >= 300,
                              "all_200": all(set(r["statuses"]) == {"200"} for r in rounds["customer"]),
                              "scoring_succeeded": scoring is None or scoring["rc"] == 0}
    write_report(args, summary)
    print(json.dumps(summary, indent=1))


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load1, load5, _ = os.getloadavg()
    return f"{os.cpu_count()} cores ({cpu}), load {load1:.1f}/{load5:.1f} at the end"


def write_report(args: argparse.Namespace, s: dict) -> None:
    c, m = s["customer"], s["me"]
    lines = [
        "# API under load (bench/api.py)", "",
        f"{s['when']}, {s['machine']}. `PYTHONPATH=. python bench/api.py --customers {args.customers} "
        f"--requests {args.requests} --concurrency {args.concurrency} --repeat {args.repeat}`: "
        f"{s['customers']:,} customers scored; server `propensity serve` (one process, access log on) and the "
        "client on the same two cores. Medians over the rounds.", "",
        "| endpoint | requests/s | p50 ms | p90 ms | p99 ms | server CPU ms/request |", "|---|---:|---:|---:|---:|---:|",
        f"| GET /customers/{{id}} | {c['rps']:.0f} | {c['p50_ms']:.1f} | {c['p90_ms']:.1f} | {c['p99_ms']:.1f} | "
        f"{s['server_cpu_ms_per_request']['customer']:.2f} |",
        f"| GET /me (baseline: framework and token check) | {m['rps']:.0f} | {m['p50_ms']:.1f} | {m['p90_ms']:.1f} | "
        f"{m['p99_ms']:.1f} | {s['server_cpu_ms_per_request']['me']:.2f} |",
        "",
        f"- GET /customers/{{id}} against the baseline: {c['rps'] / m['rps']:.2f}x its throughput, "
        f"p99 {c['p99_ms'] / m['p99_ms']:.2f}x. Targets: p99 <= 50 ms {'met' if s['targets_met']['p99_le_50ms'] else 'NOT met'}, "
        f">= 300 requests/s {'met' if s['targets_met']['rps_ge_300'] else 'NOT met'}; "
        f"every answer 200: {'yes' if s['targets_met']['all_200'] else 'no: ' + json.dumps(s['statuses'])}.",
        f"- One client alone: p50 {s['single_client']['p50_ms']:.1f} ms, p99 {s['single_client']['p99_ms']:.1f} ms "
        f"({s['single_client']['rps']:.0f} requests/s).",
        f"- POST /targets (top 500): {s['post_target_idle_s']:.2f} s idle (median of 3), "
        f"{s['post_target_under_load_s']:.2f} s while {args.concurrency} clients read customers.",
    ]
    e = s.get("earlier")
    if e:
        ec = e["customer"]
        lines.append(
            f"- The same project served by the earlier version `{e['commit']}` (`--compare-root`, {e['requests']} "
            f"requests, same clients): {ec['rps']:.1f} requests/s, p50 {ec['p50_ms']:.0f} ms, p99 {ec['p99_ms']:.0f} ms "
            f"at {args.concurrency} clients (statuses {e['statuses']}); one client alone p50 "
            f"{e['single_client']['p50_ms']:.0f} ms. Now: {c['rps'] / ec['rps']:.0f}x the throughput, "
            f"p99 {ec['p99_ms'] / c['p99_ms']:.0f}x lower, single-client p50 "
            f"{e['single_client']['p50_ms'] / s['single_client']['p50_ms']:.0f}x lower.")
    sc = s["scoring"]
    if sc:
        lines.append(
            f"- `propensity score --as-of {RESCORE_AS_OF}` started during the load: exit {sc['rc']} after "
            f"{sc['seconds']:.0f} s ({'it waited for the file, saying so' if sc['waited'] else 'no wait needed'}"
            f"{'; error: ' + sc['error'] if sc['error'] else ''}). Meanwhile {sc['requests']:,} reads in "
            f"{sc['rounds']} rounds: statuses {sc['statuses']}, connection errors {sc['connection_errors']}, median "
            f"{sc['rps_median']:.0f} requests/s, p50 {sc['p50_ms_median']:.1f} ms, worst round p99 {sc['p99_ms_max']:.0f} ms "
            "(answered from the run held in memory while the scorer holds the file); the API served the new run "
            + (f"{sc['switched_after_s']:.1f} s after the scorer exited." if sc["switched_after_s"] is not None
               else "NOT within 30 s of the scorer's exit."))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(s, indent=1) + "\n")


if __name__ == "__main__":
    main()
