"""The peer benchmark: execd against the same work written by hand.

    python bench/peer/peer.py [--rounds 5] [--workloads sales_py,dag40_py,tauro_py,tauro_py_800k,...]

For each workload (workloads.py) it starts, once, execd on a Spark Connect
server and two warm hand-written jobs (hand.py): one over Spark Connect on
the same server, one on a classic local SparkSession with the settings the
server runs with (read from the server: SQL, Delta, master, driver memory).
Then it runs the workload in interleaved rounds, the order rotating each
round, after one warm-up round each, and prints:

- the median wall time of each system and the ratios execd / hand over
  Connect and execd / hand on classic Spark;
- execd's run overhead: request to its first node's start, and its last
  node's end to the terminal event reaching the client;
- each node's median time in each system, and for execd its phases (the
  node's phase metrics: input views, worker call, result hand-back, write,
  cleanup), when execd reports them;
- a text timeline of each system's median round;
- whether execd's outputs and both hand-written jobs' are the same rows
  (count and a checksum of every output); any difference makes the script
  exit 1, after its report.

The report also gives a 95 % bootstrap interval of each round's ratio:
one run's figure moves with the machine's load, and the interval says by
how much. `--pool FILE ...` runs nothing and reports the rounds of several
results files together.

Every round, warm-up included, is written to a JSON file (--results,
default bench/peer/results/peer-<UTC time>.json), after each workload, with
the machine, the commit and the settings: the raw rounds behind a report.

The Spark Connect server is TAURO_SPARK_REMOTE (with TAURO_SPARK_UI, its
UI's address) when set, else one this script starts with `execd
spark-server` and stops at the end.

Before each system's run the script waits until the server holds no cached
data (its storage list is empty; settle). Spark shares a cache among its
sessions by plan, and execd closes a run's session, which drops the run's
last caches, just after the run's terminal event: without the wait, the
system that ran next could find a cache of a plan it asked to cache
already filled by the earlier run, and skip computing it. With the
rotation of the rounds, the hand-written Connect job ran right after execd
in most rounds, and at 2,000 orders execd / hand over Connect was 1.03-1.10
in those rounds against 0.89-1.03 in the others.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads  # noqa: E402

from tauro_exec import Client, NodeMetric, RunState, RunStateChanged  # noqa: E402

SYSTEMS: tuple[str, ...] = ("execd", "connect", "classic")


@dataclass
class Round:
    wall: float
    nodes: dict[str, tuple[float, float]]  # name -> (start, end), seconds from the round's start
    first_node: float = 0.0  # execd: request -> first node started
    terminal: float = 0.0  # execd: last node ended -> terminal event received
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # execd: node -> phase -> seconds
    calls: dict[str, int] = field(default_factory=dict)  # execd: node -> Spark Connect requests, its worker's too
    # execd: node -> "execd.<method>" or "worker.<kind>" -> Spark Connect requests of that kind
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    settled: float = 0.0  # seconds waited before the run for the server to drop cached data (settle)


def start_spark(execd: pathlib.Path, tmp: pathlib.Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """The server, its remote and its UI's address."""
    state = tmp / "spark"
    state.mkdir()
    ready, ui = state / "remote", state / "ui"
    proc = subprocess.Popen(
        [str(execd), "spark-server", "--state", str(state), "--ready-file", str(ready), "--ui-file", str(ui)],
        stdout=subprocess.DEVNULL, stderr=(state / "server.out").open("w"),
    )
    for _ in range(600):
        if ready.exists() and ready.read_text().strip() and ui.exists() and ui.read_text().strip():
            return proc, ready.read_text().strip(), ui.read_text().strip()
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    sys.exit("the Spark Connect server did not start: " + (state / "server.out").read_text()[-2000:])


def settle(ui: str, limit: float = 20.0) -> float:
    """Waits until the server holds no cached data, and returns how long that
    took. Spark shares a cache among its sessions by plan, and execd closes a
    run's session (which releases the run's last caches) after the run's
    terminal event: a system that starts at once can find an earlier run's
    cache of a plan it asks to cache, already filled, and skip computing it."""
    if not ui:
        return 0.0
    t0 = time.time()
    app = json.load(urllib.request.urlopen(ui + "/api/v1/applications", timeout=10))[0]["id"]
    while True:
        cached = json.load(urllib.request.urlopen(f"{ui}/api/v1/applications/{app}/storage/rdd", timeout=10))
        if not cached:
            return time.time() - t0
        if time.time() - t0 > limit:
            names = "; ".join(str(c.get("name", "?"))[:300] for c in cached)
            sys.exit(f"the server still holds cached data {limit:.0f} s after a run ({ui}/storage/): {names}")
        time.sleep(0.05)


def start_execd(
    execd: pathlib.Path, w: workloads.Workload, remote: str, state: pathlib.Path, pythonpath: str = "", profile: bool = True,
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[str], str]:
    workers = str(w.width) if w.python else "0"
    cmd = [str(execd), "serve", "--project", str(w.project), "--state", str(state), "--listen", "127.0.0.1:0",
           "--spark-remote", remote, "--workers", workers, "--log-level", "warn"] + (["--profile-nodes"] if profile else []) + list(extra)
    state.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=(state / "execd.log").open("w"), text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("execd listening on "):
            return proc, line.split()[-1]
    sys.exit("execd did not start: " + (state / "execd.log").read_text()[-2000:])


class Hand:
    """A warm hand-written job process."""

    def __init__(self, mode: str, w: workloads.Workload, tmp: pathlib.Path, remote: str, conf: dict[str, str] | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=str(w.project))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "hand.py"), "--mode", mode, "--workload", w.name, "--tmp", str(tmp), "--remote", remote,
             "--conf", json.dumps(conf or {})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=(tmp / f"hand-{mode}.log").open("w"), text=True, env=env,
        )
        self.out = tmp / f"out-{mode}"
        self.mode, self.log = mode, tmp / f"hand-{mode}.log"
        self.conf: dict[str, str] = self.ask({})["conf"]  # the ready line

    def ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if cmd:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the hand-written {self.mode} job ended; see {self.log}")
        return json.loads(line)  # type: ignore[no-any-return]

    def run(self) -> Round:
        r = self.ask({"cmd": "run", "out": str(self.out)})
        t0 = min(s for s, _ in r["nodes"].values())
        start = t0 - (r["wall"] - (max(e for _, e in r["nodes"].values()) - t0))  # the job's own start
        return Round(r["wall"], {n: (s - start, e - start) for n, (s, e) in r["nodes"].items()})

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def run_execd(client: Client, w: workloads.Workload) -> Round:
    t_req = time.time()
    run = client.execute(w.pipeline, start_date=workloads.START, end_date=workloads.END)
    t_term = 0.0
    state = RunState.UNSPECIFIED
    for ev in run.watch():
        if isinstance(ev, RunStateChanged) and ev.state.is_terminal:
            t_term = time.time()
            state = ev.state
    if state is not RunState.SUCCEEDED:
        sys.exit(f"execd run {run.id} of {w.pipeline} ended {state.name}: {run.refresh().message}")
    run.refresh()
    nodes: dict[str, tuple[float, float]] = {}
    for n in run.nodes:
        assert n.start_time is not None and n.end_time is not None
        nodes[n.name] = (n.start_time.timestamp() - t_req, n.end_time.timestamp() - t_req)
    first = min(s for s, _ in nodes.values())
    last = max(e for _, e in nodes.values())
    phases, calls, requests = profile_of(client, run.id)
    return Round(t_term - t_req, nodes, first_node=first, terminal=t_term - t_req - last, phases=phases, calls=calls,
                 requests=requests)


def profile_of(client: Client, run_id: str) -> tuple[dict[str, dict[str, float]], dict[str, int], dict[str, dict[str, int]]]:
    """What `execd serve --profile-nodes` reported of each node: its phases
    (execd.phase.<name>_ms, and its worker's worker.phase.<name>_ms as
    "w.<name>", here in seconds), its Spark Connect requests and its
    worker's, in all and by kind."""
    phases: dict[str, dict[str, float]] = {}
    calls: dict[str, int] = {}
    requests: dict[str, dict[str, int]] = {}
    for ev in client.run(run_id).watch():
        if not isinstance(ev, NodeMetric):
            continue
        for side, short in (("execd", ""), ("worker", "w.")):
            if ev.name.startswith(f"{side}.phase."):
                name = short + ev.name.removeprefix(f"{side}.phase.").removesuffix("_ms")
                phases.setdefault(ev.node, {})[name] = ev.value / 1000
            elif ev.name == f"{side}.calls":
                calls[ev.node] = calls.get(ev.node, 0) + int(ev.value)
            elif ev.name.startswith(f"{side}.calls."):
                requests.setdefault(ev.node, {})[f"{side}." + ev.name.removeprefix(f"{side}.calls.")] = int(ev.value)
    return phases, calls, requests


def median_round(rounds: list[Round]) -> Round:
    return sorted(rounds, key=lambda r: r.wall)[len(rounds) // 2]


def gantt(r: Round, width: int = 64) -> list[str]:
    scale = width / max(r.wall, 1e-9)
    name_w = max(len(n) for n in r.nodes)
    lines = []
    for name, (s, e) in sorted(r.nodes.items(), key=lambda kv: kv[1][0]):
        a, b = int(s * scale), max(int(s * scale) + 1, int(e * scale))
        lines.append(f"  {name:<{name_w}} |{' ' * a}{'#' * (b - a)}{' ' * max(0, width - b)}| {e - s:5.2f}s")
    return lines


def paired(res: dict[str, list[Round]], hand: str) -> float:
    """The median over rounds of execd's time over the hand-written job's in
    the same round: the machine's load, which moves both, mostly cancels."""
    return statistics.median(e.wall / h.wall for e, h in zip(res["execd"], res[hand]))


def interval(pairs: list[tuple[float, float]], resamples: int = 2000) -> tuple[float, float]:
    """A 95 % bootstrap interval of the median of a/b over the rounds'
    pairs (a, b): how far the paired ratio could move with other rounds of
    the same machine. Seeded, so a report reads the same twice."""
    rnd = random.Random(25)
    meds = sorted(statistics.median(a / b for a, b in rnd.choices(pairs, k=len(pairs))) for _ in range(resamples))
    return meds[int(resamples * 0.025)], meds[int(resamples * 0.975) - 1]


def ratios(execd: list[float], hand: list[float]) -> str:
    """The ratio of the medians, the median of each round's ratio and its
    interval, as the report prints them."""
    pairs = list(zip(execd, hand))
    lo, hi = interval(pairs)
    return (f"{statistics.median(execd) / statistics.median(hand):.3f}x (medians), "
            f"{statistics.median(a / b for a, b in pairs):.3f}x (each round's, 95 % interval {lo:.3f}-{hi:.3f})")


def pool(paths: list[str]) -> None:
    """Reports, per workload, the rounds of several results files together."""
    walls: dict[str, dict[str, list[float]]] = {}
    for path in paths:
        rec = json.loads(pathlib.Path(path).read_text())
        for name, wl in rec["workloads"].items():
            got = walls.setdefault(name, {})
            for s, rounds in wl["rounds"].items():
                got.setdefault(s, []).extend(r["wall"] for r in rounds)
    for name, got in walls.items():
        n = len(got.get("execd", []))
        print(f"=== {name}: {n} rounds from {len(paths)} files ===")
        for hand in ("connect", "classic"):
            if n and len(got.get(hand, [])) == n:
                print(f"  execd / {hand}: {ratios(got['execd'], got[hand])}")


def report(w: workloads.Workload, res: dict[str, list[Round]], same: str) -> None:
    med = {s: statistics.median(r.wall for r in res[s]) for s in SYSTEMS}
    print(f"\n=== {w.name}: {w.pipeline}, {len(w.nodes)} nodes, width {w.width}, {len(res['execd'])} rounds ===")
    for s in SYSTEMS:
        walls = sorted(r.wall for r in res[s])
        print(f"  {s:<8} median {med[s]:6.2f}s  min {walls[0]:6.2f}s  max {walls[-1]:6.2f}s")
    print(f"  execd / hand over Connect: {med['execd'] / med['connect']:.2f}x    execd / hand on classic Spark: {med['execd'] / med['classic']:.2f}x")
    print(f"  the same, median of each round's ratio: {paired(res, 'connect'):.2f}x and {paired(res, 'classic'):.2f}x")
    for hand in ("connect", "classic"):
        lo, hi = interval([(e.wall, h.wall) for e, h in zip(res["execd"], res[hand])])
        print(f"  95 % interval of that ratio over {hand} (bootstrap of the rounds): {lo:.2f}-{hi:.2f}x")
    if "before" in res:
        print(f"  execd / execd before: {med['execd'] / med['before']:.2f}x")
    for s in ("before", "execd"):
        if s in res:
            ex = res[s]
            print(f"  {s} request -> first node: median {statistics.median(r.first_node for r in ex) * 1000:.0f} ms; "
                  f"last node -> terminal event: median {statistics.median(r.terminal for r in ex) * 1000:.0f} ms")
    print("  wait before a run for the server to drop an earlier run's cached data (settle), median / max ms: " + ", ".join(
        f"{s} {statistics.median(r.settled for r in res[s]) * 1000:.0f} / {max(r.settled for r in res[s]) * 1000:.0f}" for s in SYSTEMS))
    ex = res["execd"]
    print(f"  outputs: {same}")
    names = [n.name for n in w.nodes]
    node_med = {s: {n: statistics.median(r.nodes[n][1] - r.nodes[n][0] for r in res[s]) for n in names} for s in SYSTEMS}
    print("  node times, median (s)")
    name_w = max(len(n) for n in names)
    for n in names:
        print(f"    {n:<{name_w}}  " + "  ".join(f"{s} {node_med[s][n]:5.2f}" for s in SYSTEMS))
    for s in ("before", "execd"):
        if s not in res:
            continue
        rs = res[s]
        phases = list(dict.fromkeys(p for r in rs for ph in r.phases.values() for p in ph))
        if not phases:
            continue
        print(f"  {s}: each node's Spark Connect requests and phases, median (ms): " + ", ".join(phases))
        for n in names:
            calls = statistics.median(r.calls.get(n, 0) for r in rs)
            vals = [statistics.median(r.phases.get(n, {}).get(p, 0.0) for r in rs) * 1000 for p in phases]
            print(f"    {n:<{name_w}}  requests {calls:3.0f}  " + " ".join(f"{p} {v:6.1f}" for p, v in zip(phases, vals)))
            kinds = median_round(rs).requests.get(n, {})
            if kinds:
                print(f"    {'':<{name_w}}    " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    for s in SYSTEMS:
        m = median_round(res[s])
        print(f"  timeline of {s}'s median round ({m.wall:.2f}s):")
        print("\n".join(gantt(m)))


@dataclass
class Outputs:
    """Each system's digest (rows, checksum) of every output, and whether they agree."""

    digests: dict[str, dict[str, list[int]]]  # system -> output path -> [rows, checksum]
    different: dict[str, list[str]]  # hand-written system -> outputs that differ from execd's

    @property
    def same(self) -> bool:
        return not any(self.different.values())

    def describe(self) -> str:
        n = len(self.digests["execd"])
        if self.same:
            return f"the same rows in all {n} outputs of execd and both hand-written jobs (count and checksum)"
        return "; ".join(
            f"{s} DIFFERENT from execd in {len(d)} of {n}: " + ", ".join(d[:5]) for s, d in self.different.items() if d
        )


def compare(w: workloads.Workload, hands: dict[str, Hand]) -> Outputs:
    """Digest execd's outputs and each hand-written job's (all read by the
    Connect job's session) and compare them output by output."""
    outs = [(o.format, o.path) for n in w.nodes for o in n.outputs]
    roots = {"execd": w.project / w.execd_output, **{s: h.out for s, h in hands.items()}}
    reader = hands["connect"]
    digests: dict[str, dict[str, list[int]]] = {}
    for system, root in roots.items():
        got = reader.ask({"cmd": "digest", "paths": [[f, str(root / p)] for f, p in outs]})["digests"]
        digests[system] = {p: d for (_, p), d in zip(outs, got)}
    different = {s: [p for _, p in outs if digests[s][p] != digests["execd"][p]] for s in hands}
    return Outputs(digests, different)


def results_path(given: str) -> pathlib.Path:
    if given:
        return pathlib.Path(given)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return HERE / "results" / f"peer-{stamp}.json"


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "-C", str(workloads.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(workloads.ROOT), "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "commit": commit + ("-dirty" if dirty else ""),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": load,
    }


def write_results(path: pathlib.Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("PEER_ROUNDS", "5")))
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--workloads", default=os.environ.get("PEER_WORKLOADS", "sales_py,sales_sql,dag40_py,dag40_sql,tauro_py,tauro_py_800k"))
    ap.add_argument("--execd", default=str(workloads.ROOT / "bin" / "execd"))
    ap.add_argument("--before", default="", help="an earlier execd binary to run interleaved beside --execd, as 'before'")
    ap.add_argument("--before-pythonpath", default="", help="PYTHONPATH for the earlier execd's workers (its tauro_exec)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--results", default="", help="where to write every round as JSON (default: bench/peer/results/peer-<UTC time>.json)")
    ap.add_argument("--pool", nargs="+", metavar="FILE", help="run nothing: report the rounds of these results files together")
    a = ap.parse_args()
    if a.pool:
        pool(a.pool)
        return
    global SYSTEMS
    if a.before:
        SYSTEMS = ("execd", "before", "connect", "classic")
    execd = pathlib.Path(a.execd)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="peer-"))
    spark = None
    remote = os.environ.get("TAURO_SPARK_REMOTE", "")
    ui = os.environ.get("TAURO_SPARK_UI", "") if remote else ""
    out_file = results_path(a.results)
    record: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "settings": {"rounds": a.rounds, "warmup": a.warmup, "systems": list(SYSTEMS), "before": a.before},
        "workloads": {},
    }
    differ: list[str] = []
    try:
        if not remote:
            print("starting a Spark Connect server ...", flush=True)
            spark, remote, ui = start_spark(execd, tmp)
        if not ui:
            print("no TAURO_SPARK_UI beside TAURO_SPARK_REMOTE: runs do not wait for the server to drop an earlier run's caches", flush=True)
        for name in a.workloads.split(","):
            w = workloads.MAKERS[name](tmp)
            proc, addr = start_execd(execd, w, remote, tmp / f"state-{name}")
            procs = [proc]
            clients = {"execd": Client(addr)}
            if a.before:
                bproc, baddr = start_execd(pathlib.Path(a.before), w, remote, tmp / f"state-before-{name}", a.before_pythonpath)
                procs.append(bproc)
                clients["before"] = Client(baddr)
            # The classic job runs with the settings the server runs with.
            hands = {"connect": Hand("connect", w, tmp, remote)}
            hands["classic"] = Hand("classic", w, tmp, remote, hands["connect"].conf)
            if hands["classic"].conf != hands["connect"].conf:
                sys.exit(f"the classic session did not take the server's settings: {hands['classic'].conf} against {hands['connect'].conf}")
            res: dict[str, list[Round]] = {s: [] for s in SYSTEMS}
            warm: dict[str, list[Round]] = {s: [] for s in SYSTEMS}
            try:
                k = len(SYSTEMS)
                for i in range(a.warmup + a.rounds):
                    order = SYSTEMS[i % k:] + SYSTEMS[: i % k]
                    for s in order:
                        waited = settle(ui)
                        r = run_execd(clients[s], w) if s in clients else hands[s].run()
                        r.settled = waited
                        (res if i >= a.warmup else warm)[s].append(r)
                    print(f"  {name} round {i + 1}/{a.warmup + a.rounds}: " + "  ".join(
                        f"{s} {res[s][-1].wall:.2f}s" for s in SYSTEMS if i >= a.warmup) + (" (warm-up)" if i < a.warmup else ""), flush=True)
                outputs = compare(w, hands)
                report(w, res, outputs.describe())
                if not outputs.same:
                    differ.append(name)
                record["workloads"][name] = {
                    "pipeline": w.pipeline,
                    "nodes": len(w.nodes),
                    "width": w.width,
                    "orders": [list(SYSTEMS[i % k:] + SYSTEMS[: i % k]) for i in range(a.warmup + a.rounds)],
                    "warmup": {s: [asdict(r) for r in rs] for s, rs in warm.items()},
                    "rounds": {s: [asdict(r) for r in rs] for s, rs in res.items()},
                    "outputs": {"same": outputs.same, "different": outputs.different, "digests": outputs.digests},
                }
                write_results(out_file, record)
            finally:
                for h in hands.values():
                    h.close()
                for c in clients.values():
                    c.close()
                for p in procs:
                    p.send_signal(signal.SIGTERM)
                    p.wait(timeout=60)
    finally:
        if spark is not None:
            spark.send_signal(signal.SIGTERM)
            spark.wait(timeout=120)
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    print(f"\nevery round: {out_file}")
    if differ:
        sys.exit(f"outputs differ from execd's in {', '.join(differ)}: see the report above")


if __name__ == "__main__":
    main()
