"""Jobs per second through vmcore.ray on this machine, against the local API.

    pip install -e ".[ray]" && python perf/bench_ray.py [--jobs 4000] [--n 100] [--batch 1,8,64]

Runs the bundled ``sum`` program (``main(n)``, small n) as

* local: one Sandbox, ``reset()`` + ``call()`` per job (what a NodeWorker
  does per job, without Ray);
* worker: vmcore.ray.NodeWorker.run_batch in this process (the actor's
  per-job work, including its bookkeeping);
* Cluster.map with 1 and 2 actors and several batch sizes (jobs per actor
  call), on a local Ray cluster (``ray.init(num_cpus=2)``).

and prints jobs/s and the overhead per job over the local API.  Not a
test; the machine's load average is printed with the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import vmcore
from vmcore.ray import Cluster, NodeWorker

SUM = os.path.join(os.path.dirname(vmcore.__file__), "data", "sum.polkavm")
GAS = 10_000_000


def best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=4000)
    ap.add_argument("--n", type=int, default=100, help="sum's argument (loop iterations per job)")
    ap.add_argument("--batch", default="1,8,64", help="batch sizes (jobs per actor call)")
    ap.add_argument("--actors", default="1,2")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batch.split(",")]
    actor_counts = [int(a) for a in args.actors.split(",")]
    program = vmcore.Program.load(SUM)
    inputs = [args.n] * args.jobs
    rows = []
    load = os.getloadavg()
    print(f"sum(n={args.n}), {args.jobs} jobs, best of {args.repeats}; {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)

    sb = vmcore.Sandbox(program, gas=0, isolation="inline")

    def run_local():
        for n in inputs:
            sb.reset()
            sb.gas = GAS
            sb.call("main", n)
    t = best_of(args.repeats, run_local)
    local_per_job = t / args.jobs
    rows.append({"mode": "local Sandbox reset+call", "actors": 0, "batch": 0, "jobs_per_s": args.jobs / t,
                 "us_per_job": t / args.jobs * 1e6, "overhead_us": 0.0})

    import hashlib
    with open(SUM, "rb") as f:
        blob = f.read()
    digest = hashlib.sha256(blob).hexdigest()
    worker = NodeWorker({"isolation": "inline"})
    worker.ensure_program(digest, blob)
    jobs = [(i, digest, [None], "polkavm", None, "main", (n,), GAS, None, ()) for i, n in enumerate(inputs)]
    t = best_of(args.repeats, lambda: worker.run_batch(jobs))
    rows.append({"mode": "NodeWorker.run_batch in-process", "actors": 0, "batch": len(jobs),
                 "jobs_per_s": args.jobs / t, "us_per_job": t / args.jobs * 1e6,
                 "overhead_us": (t / args.jobs - local_per_job) * 1e6})
    worker.close()

    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for actors in actor_counts:
            with Cluster(actors=actors, isolation="inline", num_cpus=1, max_in_flight=2) as cluster:
                cluster.preload(program)
                list(cluster.map(program, "main", inputs[:200], gas=GAS))  # warm up
                for batch in batches:
                    t = best_of(args.repeats, lambda: list(cluster.map(program, "main", inputs, gas=GAS,
                                                                         batch_size=batch)))
                    rows.append({"mode": "Cluster.map", "actors": actors, "batch": batch,
                                 "jobs_per_s": args.jobs / t, "us_per_job": t / args.jobs * 1e6,
                                 "overhead_us": (t / args.jobs - local_per_job) * 1e6})
                    print(f"  {actors} actor(s), batch {batch}: {args.jobs / t:,.0f} jobs/s", flush=True)
                # one job at a time: the round trip of Cluster.call
                t = best_of(args.repeats, lambda: [cluster.call(program, "main", args.n, gas=GAS)
                                                   for _ in range(100)])
                rows.append({"mode": "Cluster.call (sequential)", "actors": actors, "batch": 1,
                             "jobs_per_s": 100 / t, "us_per_job": t / 100 * 1e6,
                             "overhead_us": (t / 100 - local_per_job) * 1e6})
    finally:
        ray.shutdown()

    print("\n| mode | actors | batch | jobs/s | µs/job | overhead/job vs local |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['actors'] or '-'} | {r['batch'] or '-'} | {r['jobs_per_s']:,.0f} | "
              f"{r['us_per_job']:,.1f} | {r['overhead_us']:,.1f} µs |")
    load = os.getloadavg()
    print(f"\nload average afterwards {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "jobs": args.jobs, "n": args.n, "load": load}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
