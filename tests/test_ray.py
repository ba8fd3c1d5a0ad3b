"""vmcore.ray on a local two-CPU Ray cluster: results, typed errors across
the wire, a killed actor (retried, nothing lost), program shipping by hash,
back-pressure, and a fuzz campaign split across two actors that finds a
planted divergence.  Skipped when Ray is not installed (pip install
".[ray]"); the import-error test runs either way."""
import hashlib
import importlib.util
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest

import vmcore
from vmcore import asm, fuzz

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason='Ray is not installed (pip install ".[ray]")')
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(vmcore.__file__), "data")
SUM_PATH = os.path.join(DATA, "sum.polkavm")
SUM = vmcore.Program.load(SUM_PATH)
HOSTCALL = vmcore.Program.load(os.path.join(DATA, "hostcall.polkavm"))
FAULTS = vmcore.Program.from_bytes(asm.assemble("""
%isa = latest64
%rw_data_size = 4096
pub @trap:
    trap
pub @load:
    a0 = u64 [a0]
    ret
pub @spin:
@again:
    jump @again
"""))
GAS = 10_000_000


def local(program, export, *args, gas=GAS, timeout=None, hostcalls=None, **options):
    """What the local API returns or raises (the reference)."""
    with vmcore.Sandbox(program, gas=gas, hostcalls=hostcalls, **options) as sb:
        try:
            return sb.call(export, *args, timeout=timeout), None
        except Exception as e:  # noqa: BLE001 - compared below
            return None, e


def test_import_without_ray_names_the_extra():
    code = ("import sys; sys.modules['ray'] = None\n"
            "import vmcore, vmcore.ray\n"
            "assert 'ray' not in [m for m in sys.modules if sys.modules[m] is not None and m == 'ray']\n"
            "try:\n    vmcore.ray.Cluster()\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'pip install "vmcore[ray]"' in out.stdout
    # import vmcore never imports Ray
    out = subprocess.run([sys.executable, "-c", "import sys, vmcore; print('ray' in sys.modules)"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("flag", ["--ray-actors", "--ray-chunk"])
def test_fuzz_ray_cli_refuses_bad_counts(flag):
    out = subprocess.run([sys.executable, "-m", "vmcore", "fuzz", "--ray", flag, "0", "--cases", "1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and f"{flag} must be at least 1" in out.stderr


@pytest.fixture(scope="module")
def ray_session():
    if not HAVE_RAY:
        pytest.skip('Ray is not installed (pip install ".[ray]")')
    import ray
    path = os.pathsep.join([HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def cluster(ray_session):
    from vmcore.ray import Cluster
    c = Cluster(actors=2, num_cpus=0.25, isolation="inline", max_in_flight=2,
                hostcalls={"inc": "ray_helpers:inc"})
    yield c
    c.close()


@needs_ray
def test_results_match_the_local_api(cluster):
    inputs = list(range(0, 300, 3))
    want = [local(SUM, "main", n)[0] for n in inputs]
    assert list(cluster.map(SUM, "main", inputs, gas=GAS)) == want
    # as completed: every index exactly once, same values
    got = {r.index: r for r in cluster.results(SUM, "main", inputs, gas=GAS, ordered=False, batch_size=3)}
    assert sorted(got) == list(range(len(inputs)))
    assert [got[i].value for i in range(len(inputs))] == want
    assert all(r.ok and r.gas is not None and r.attempts == 1 for r in got.values())
    # single calls, futures, tuple arguments, the registry's hostcall
    assert cluster.call(SUM, "main", 1000, gas=GAS) == local(SUM, "main", 1000)[0]
    futures = [cluster.submit(HOSTCALL, "main", n, gas=GAS) for n in (1, 5, 9)]
    assert [f.result(timeout=30) for f in futures] == [2, 10, 18]
    assert list(cluster.map(HOSTCALL, "main", [(3,), (4,)], gas=None)) == [6, 8]
    gas_left = next(cluster.results(SUM, "main", [50], gas=GAS)).gas
    with vmcore.Sandbox(SUM, gas=GAS) as sb:
        sb.call("main", 50)
        assert gas_left == sb.gas


@needs_ray
def test_typed_errors_cross_the_wire(cluster):
    cases = [
        (SUM, "main", (10**9,), {"gas": 1000}, vmcore.OutOfGas),
        (FAULTS, "trap", (), {}, vmcore.Trap),
        (FAULTS, "load", (0x7000_0000,), {}, vmcore.PageFault),
        (FAULTS, "spin", (), {"gas": None, "timeout": 0.05}, vmcore.Timeout),
        (HOSTCALL, "main", (3,), {"hostcalls": {"inc": "ray_helpers:boom"}}, vmcore.HostcallError),
    ]
    for program, export, args, kw, kind in cases:
        _, want = local(program, export, *args, gas=kw.get("gas", GAS), timeout=kw.get("timeout"),
                        hostcalls={"inc": _helper(kw["hostcalls"]["inc"])} if "hostcalls" in kw else None)
        assert type(want) is kind
        with pytest.raises(kind) as info:
            cluster.call(program, export, *args, gas=kw.get("gas", GAS), timeout=kw.get("timeout"),
                         hostcalls=kw.get("hostcalls"))
        got = info.value
        assert type(got) is type(want)
        if kind is not vmcore.Timeout:  # where a deadline stops a spinning guest varies
            assert got.pc == want.pc and str(got) == str(want)
        assert got.__dict__.keys() == want.__dict__.keys()
        if kind is vmcore.PageFault:
            assert got.address == want.address == 0x7000_0000
        if kind is vmcore.HostcallError:
            assert (got.name, got.number) == ("inc", 0)
            assert isinstance(got.__cause__, ValueError) and "boom" in str(got.__cause__)
    # errors come back as values with return_exceptions, in order, with the rest intact
    out = list(cluster.map(SUM, "main", [1, 10**9, 2], gas=5000, return_exceptions=True))
    assert out[0] == local(SUM, "main", 1)[0] and isinstance(out[1], vmcore.OutOfGas)
    assert out[2] == local(SUM, "main", 2)[0]
    with pytest.raises(vmcore.OutOfGas):
        list(cluster.map(SUM, "main", [1, 10**9], gas=5000))


def _helper(spec):
    import ray_helpers  # tests/ is on sys.path under pytest
    return getattr(ray_helpers, spec.split(":")[1])


@needs_ray
def test_bad_input_is_refused_on_the_driver(cluster):
    from vmcore.ray import Cluster, hostcall_spec
    with pytest.raises(KeyError, match="no export named 'nope'"):
        cluster.call(SUM, "nope")
    with pytest.raises(TypeError, match="must be ints"):
        cluster.call(SUM, "main", "10")
    with pytest.raises(TypeError, match="at most 9"):
        cluster.call(SUM, "main", *range(10))
    with pytest.raises(TypeError, match="gas must be an int"):
        cluster.call(SUM, "main", 1, gas=1.5)
    with pytest.raises(ValueError, match="timeout"):
        cluster.call(SUM, "main", 1, timeout=-1)
    with pytest.raises(TypeError, match="not importable"):
        cluster.call(HOSTCALL, "main", 1, hostcalls={"inc": lambda caller, a0: a0})
    with pytest.raises(TypeError, match="module:function"):
        hostcall_spec("no_colon")
    with pytest.raises(vmcore.ProgramError):
        cluster.call(b"not a program", "main")
    with pytest.raises(TypeError, match="a program must be"):
        cluster.call(12, "main")
    with pytest.raises(ValueError, match="max_in_flight"):
        Cluster(max_in_flight=0)
    with pytest.raises(ValueError, match="per must be"):
        Cluster(per="rack")
    # a hostcall that does not import on the actor: the job's error, typed, not a lost actor
    with pytest.raises(ModuleNotFoundError):
        cluster.call(HOSTCALL, "main", 1, gas=GAS, hostcalls={"inc": "no_such_module_xyz:inc"})


@needs_ray
def test_program_shipped_once_per_actor_by_hash(ray_session):
    from vmcore.ray import Cluster
    with open(SUM_PATH, "rb") as f:
        blob = f.read()
    with Cluster(actors=2, num_cpus=0.25, isolation="inline", max_in_flight=2) as c:
        remote = c.program(SUM_PATH)
        assert remote.sha256 == hashlib.sha256(blob).hexdigest()
        assert c.program(blob) is remote and c.program(remote) is remote
        by_object = c.program(SUM)  # a Program object ships as its pickle (another hash)
        assert by_object is c.program(vmcore.Program.load(SUM_PATH)) and by_object.sha256 != remote.sha256
        n = 120
        assert list(c.map(remote, "main", range(n), gas=GAS, batch_size=4)) == \
            list(c.map(by_object, "main", range(n), gas=GAS, batch_size=4))
        stats = c.stats()
        assert sum(s["jobs"] for s in stats) == 2 * n
        for s in stats:  # both actors ran jobs, and each fetched each blob exactly once
            assert s["jobs"] > 0
            assert s["shipped"] == {remote.sha256: 1, by_object.sha256: 1}
        assert c.counters["submitted"] == c.counters["completed"] == 2 * n
        # preload ships to every actor now; a known hash is not fetched again
        third = c.preload(FAULTS)
        assert all(s["shipped"].get(third.sha256) == 1 for s in c.stats())


@needs_ray
def test_killed_actor_jobs_are_retried_nothing_lost(ray_session):
    from vmcore.ray import Cluster
    ray = ray_session
    with Cluster(actors=2, num_cpus=0.25, isolation="inline", max_in_flight=2, max_retries=2) as c:
        n, inputs = 24, [2_000_000 + i for i in range(24)]  # ~15 ms each
        want = [local(SUM, "main", x, gas=None)[0] for x in inputs]
        got, victim, slot = [], None, -1
        for r in c.results(SUM, "main", inputs, gas=None, batch_size=1):
            got.append(r)
            slot = max(range(2), key=lambda s: c._per_slot[s])
            if victim is None and len(got) >= 2 and c._per_slot[slot] > 0:  # calls in flight right now
                victim = c.actors[slot]
                ray.kill(victim, no_restart=True)
        assert [r.index for r in got] == list(range(n))
        assert [r.value for r in got] == want
        assert all(r.ok for r in got)
        assert c.counters["replaced"] == 1 and c.counters["retried"] >= 1
        assert any(r.attempts == 2 for r in got)
        assert c.counters["submitted"] == c.counters["completed"] == n
        assert victim is not None and victim not in c.actors and c.call(SUM, "main", 7) == local(SUM, "main", 7)[0]


@needs_ray
def test_retries_are_bounded_then_worker_lost(ray_session):
    from vmcore.ray import Cluster, WorkerLost
    with Cluster(actors=2, num_cpus=0.25, isolation="inline", max_retries=1, batch_size=1) as c:
        # the hostcall kills whichever actor runs it, every time
        out = list(c.results(HOSTCALL, "main", [1], gas=GAS, hostcalls={"inc": "ray_helpers:die"}))
        assert len(out) == 1
        for r in out:
            assert isinstance(r.error, WorkerLost) and isinstance(r.error, vmcore.SandboxError)
            assert r.error.attempts == 2 and r.attempts == 2
        assert pickle.loads(pickle.dumps(out[0].error)).attempts == 2
        assert c.counters["lost"] == 1 and c.counters["completed"] == c.counters["submitted"] == 1
        assert c.counters["replaced"] == 2


@needs_ray
def test_dead_sandbox_process_is_a_sandbox_error(ray_session):
    from vmcore.ray import Cluster
    with Cluster(actors=1, num_cpus=0.25, isolation="process", backend="interpreter", pool_size=1) as c:
        _, want = local(HOSTCALL, "main", 2, isolation="process", backend="interpreter",
                        hostcalls={"inc": _helper("ray_helpers:kill_sandbox")})
        with pytest.raises(vmcore.SandboxError) as info:
            c.call(HOSTCALL, "main", 2, gas=GAS, hostcalls={"inc": "ray_helpers:kill_sandbox"})
        assert type(info.value) is type(want)
        # an import nobody serves (this cluster has no registry): the local API's HostcallError
        _, want = local(HOSTCALL, "main", 1, isolation="process", backend="interpreter")
        with pytest.raises(vmcore.HostcallError, match="no hostcall is registered") as info:
            c.call(HOSTCALL, "main", 1, gas=GAS)
        assert str(info.value) == str(want) and info.value.pc == want.pc
        # the actor survived and serves the next job from a fresh sandbox process
        assert c.call(HOSTCALL, "main", 4, gas=GAS, hostcalls={"inc": "ray_helpers:inc"}) == 8
        assert c.stats()[0]["errors"] == 2


@needs_ray
def test_threaded_actor_runs_calls_concurrently(ray_session):
    from vmcore.ray import Cluster
    with Cluster(actors=1, threads=2, num_cpus=0.25, isolation="inline", max_in_flight=4) as c:
        inputs = [1 + (i * 7919) % 5000 for i in range(200)]
        got = list(c.map(HOSTCALL, "main", inputs[:50], gas=GAS, batch_size=5, hostcalls={"inc": "ray_helpers:inc"}))
        assert got == [2 * n for n in inputs[:50]]
        assert list(c.map(SUM, "main", inputs, gas=GAS, batch_size=5)) == [local(SUM, "main", n)[0] for n in inputs]
        [s] = c.stats()
        assert s["jobs"] == 250 and s["errors"] == 0


@needs_ray
def test_back_pressure_bounds_calls_in_flight(ray_session):
    from vmcore.ray import Cluster
    with Cluster(actors=2, num_cpus=0.25, isolation="inline", max_in_flight=1) as c:
        peak = 0
        stop = threading.Event()

        def watch():
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, len(c._inflight))
                time.sleep(0.0005)
        t = threading.Thread(target=watch)
        t.start()
        consumed = []

        def inputs():
            for i in range(600):
                consumed.append(i)
                yield i
        c.stats()  # both actors are up
        it = c.map(SUM, "main", inputs(), gas=GAS, batch_size=2)
        first = next(it)
        # read lazily: in-flight batches plus what finished meanwhile, not the whole input
        assert len(consumed) < 100 and len(c._inflight) <= 2
        rest = list(it)
        stop.set()
        t.join()
        assert [first] + rest == [local(SUM, "main", i)[0] for i in range(600)]
        assert 1 <= peak <= 2


@needs_ray
def test_fuzz_campaign_finds_a_planted_divergence_on_two_workers(ray_session, tmp_path):
    from vmcore.ray import Cluster
    from vmcore.ray_fuzz import campaign
    with Cluster(actors=2, num_cpus=0.25, isolation="inline", max_in_flight=1) as c:
        summary = campaign(c, cases=60, seconds=None, seed=5, targets=["diff"], chunk=10, out_dir=str(tmp_path),
                           plant={"seed": 5, "case": 37})
        info = summary.per_target["diff"]
        assert info["cases"] == 60 and info["chunks"] == 6 and info["ranges"] == "0..59"
        assert len({slot for slot, _ in info["workers"]}) == 2  # the chunks ran on both actors
        assert summary.failed == 1 and summary.passed == 59
        [f] = summary.failures
        assert (f.case, f.seed, f.kind) == (37, 5, "mismatch")
        assert "interpreter/inline(planted) vs" in f.summary and "r7" in f.summary
        assert f.path and os.path.dirname(f.path) == str(tmp_path)  # written on the driver
        assert f.path.endswith("diff-s5-37.json") and os.path.exists(f.path)
        # the same seed without the plant, split differently: clean, same statistics as a local run
        clean = campaign(c, cases=30, seconds=None, seed=5, targets=["diff", "loader"], chunk=7,
                         out_dir=str(tmp_path / "clean"))
    assert clean.failed == 0 and clean.passed == 60
    here = fuzz.campaign(seconds=60, cases=30, seed=5, targets=["diff", "loader"], out_dir=str(tmp_path / "local"))
    for target in ("diff", "loader"):
        assert clean.per_target[target]["stats"] == here.per_target[target]["stats"]
