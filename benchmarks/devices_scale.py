"""`edgeship device run` at scale: 20 devices at once against one, and the SSH path against running the same steps locally.

One real sshd on localhost serves every device (each its own workdir; all share one cached runtime
venv, as tests/devices does). What is measured is orchestration, not pip: every figure is a second
run, with the venv and the bundle already in place, and a short bench (`--seconds 0.1`). Such a run
takes two commands on a device (the helper's `arrive`, then `bench --selftest-json`: self-test and
bench in one Python process) and one SFTP fetch of both results.

All devices run on this one machine's cores, so the 20-device run also measures 20 self-tests and
benches competing for them; on real devices each has its own CPU. So the benchmark also measures
the CPU one device's commands take here (sshd, the shell, the helper's and the runtime's Python:
the CPU time of the sshd process tree) and the orchestrator's own CPU, and prints the floor those
set: N devices x device CPU / cores, the least wall time N devices can take on this host however
well they are orchestrated. The 20-device wall over that floor is what orchestration adds.

The test sshd skips the login shell's ~/.bashrc as a device's non-interactive shell does (see
tests/devices/sshd.py); `--shell-rc` keeps it, to see what this machine's rc file costs a command.

Measured on the 2-core development machine while others' work ran (load average 6 to 15):
1 device 0.64 s, 20 devices 4.00 s (6.3×); 0.35 s of CPU a device, so a floor of 3.5 s for 20
(5.5× one device), which the 20-device run came within 1.14× of; SSH over a local folder +0.05 s
a device. The same with the earlier steps (4 commands, selftest and bench as 2 processes): 0.90 s
and 7.25 s (8.0×). With this machine's ~/.bashrc (`pyenv init`) read for every command: 1.22 s and
7.08 s, before 1.27 s and 14.25 s.

    python benchmarks/devices_scale.py --bundle artifacts/bench/mlp/bundle [--devices 20] [--shell-rc]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "devices"))

from sshd import sshd_missing_reason, start_sshd  # noqa: E402

from edgeship.devices.inventory import parse_device  # noqa: E402
from edgeship.devices.run import RunOptions, check_all, run_devices  # noqa: E402
from edgeship.devices.wheels import cache_root  # noqa: E402
from edgeship.runtime.tables import markdown_table  # noqa: E402

STEPS = ("connect", "probe", "install", "copy", "selftest+bench", "fetch")
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds of a process and all its descendants, living and reaped (from /proc)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), sum(int(value) for value in fields[11:15]))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == pid]
    return total / TICK


def own_cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed_run(devices, bundle: Path, out: Path, options: RunOptions, server=None) -> tuple[float, list, float, float]:
    """Wall seconds, results, orchestrator CPU and device-side CPU (the sshd tree's, or local children's) of one run."""
    device_before = tree_cpu(server.process.pid) if server else own_cpu(resource.RUSAGE_CHILDREN)
    mine_before = own_cpu()
    started = time.perf_counter()
    results = run_devices(devices, bundle, out, options, say=lambda line: None)
    wall = time.perf_counter() - started
    mine = own_cpu() - mine_before
    time.sleep(0.3)  # let the closed sessions' processes end and be counted
    device = (tree_cpu(server.process.pid) if server else own_cpu(resource.RUSAGE_CHILDREN)) - device_before
    failed = [f"{r.name}: {r.reason}" for r in results if r.status != "pass"]
    if failed:
        raise SystemExit("device run failed: " + "; ".join(failed))
    return wall, results, mine, device


def timed_check(devices, options: RunOptions) -> float:
    """Connect and gather facts (one helper call) on every device at once: orchestration with almost no device work."""
    import asyncio

    started = time.perf_counter()
    found = asyncio.run(check_all(devices, options))
    wall = time.perf_counter() - started
    errors = [entry["error"] for entry in found if "error" in entry]
    if errors:
        raise SystemExit("device check failed: " + "; ".join(errors))
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "artifacts" / "bench" / "mlp" / "bundle")
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the one-device and local cases (median taken)")
    parser.add_argument("--seconds", default="0.1", help="bench seconds per configuration")
    parser.add_argument("--shell-rc", action="store_true", help="let the login shell read ~/.bashrc for every command")
    args = parser.parse_args()
    if not (args.bundle / "manifest.json").is_file():
        raise SystemExit(f"{args.bundle} is not a bundle; run `make bench` (cross_backend) first or give --bundle")
    reason = sshd_missing_reason()
    if reason:
        print(f"SKIP: {reason}")
        return 77
    venv = str(cache_root() / "device-venvs" / f"onnx-py{sys.version_info[0]}{sys.version_info[1]}")
    python = getattr(sys, "_base_executable", sys.executable)
    cores = os.cpu_count() or 1
    options = RunOptions(jobs=args.devices, bench_options=["--threads", "1", "--batch", "1", "--seconds", args.seconds])
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        server = start_sshd(scratch / "sshd", shell_rc=args.shell_rc)
        try:
            def ssh_device(name: str):
                return parse_device(name, {"host": "127.0.0.1", "port": server.port, "identity_file": str(server.user_key),
                                           "known_hosts": str(server.known_hosts), "python": python, "extra": "onnx",
                                           "workdir": str(scratch / "devices" / name), "venv": venv})

            one = [ssh_device("one")]
            fleet = [ssh_device(f"dev{index:02d}") for index in range(args.devices)]
            (scratch / "local").mkdir()
            local = [parse_device("local", {"kind": "local", "folder": str(scratch / "local"), "python": python, "extra": "onnx",
                                            "workdir": "edgeship", "venv": venv})]
            out = scratch / "run" / "devices"
            for group in (one, local, fleet):  # first runs: venv brought up to date, bundles copied (not measured)
                timed_run(group, args.bundle, out, options)
            one_runs, local_runs = [], []
            for _ in range(args.repeats):
                one_runs.append(timed_run(one, args.bundle, out, options, server))
                local_runs.append(timed_run(local, args.bundle, out, options))
            fleet_wall, fleet_results, fleet_mine, fleet_device = timed_run(fleet, args.bundle, out, options, server)
            check_one = statistics.median(timed_check(one, options) for _ in range(args.repeats))
            check_fleet = statistics.median(timed_check(fleet, options) for _ in range(args.repeats))
        finally:
            server.stop()

    def median(runs, index):
        return statistics.median(run[index] for run in runs)

    one_wall, local_wall = median(one_runs, 0), median(local_runs, 0)
    one_cpu, local_cpu = median(one_runs, 3) + median(one_runs, 2), median(local_runs, 3) + median(local_runs, 2)
    per_step = {step: (statistics.median(run[1][0].steps.seconds.get(step, 0) for run in one_runs),
                       statistics.median(run[1][0].steps.seconds.get(step, 0) for run in local_runs)) for step in STEPS}
    fleet_steps = {step: round(statistics.median(r.steps.seconds.get(step, 0) for r in fleet_results), 3) for step in STEPS}
    fleet_cpu = fleet_mine + fleet_device
    floor = fleet_cpu / cores
    rows = [
        ["1 device over SSH (second run)", f"{one_wall:.2f}", "1.00×", f"{one_cpu:.2f}"],
        [f"{args.devices} devices over SSH at once (second run)", f"{fleet_wall:.2f}", f"{fleet_wall / one_wall:.2f}×",
         f"{fleet_cpu:.2f} ({fleet_cpu / args.devices:.3f} a device)"],
        [f"CPU floor of {args.devices} devices on this host's {cores} cores (their CPU / {cores})", f"{floor:.2f}",
         f"{floor / one_wall:.2f}×", "–"],
        ["1 device as a local folder (same steps, no SSH)", f"{local_wall:.2f}", f"{local_wall / one_wall:.2f}×", f"{local_cpu:.2f}"],
        ["`device check` (connect + facts), 1 device", f"{check_one:.2f}", "–", "–"],
        [f"`device check` (connect + facts), {args.devices} devices at once", f"{check_fleet:.2f}",
         f"{check_fleet / check_one:.2f}× the 1-device check", "–"],
    ]
    print(f"All timings on one shared host ({cores} cores, load average {os.getloadavg()[0]:.1f} at the end): every device's "
          "selftest and bench ran on its cores.\n")
    print(markdown_table(["case", "wall (s)", "vs 1 device", "CPU (s)"], rows))
    print()
    print(markdown_table(["step", "1 device SSH (s)", "1 device local (s)", "SSH overhead (s)", f"{args.devices} devices SSH, median (s)"],
                         [[step, f"{ssh:.3f}", f"{here:.3f}", f"{ssh - here:+.3f}", f"{fleet_steps[step]:.3f}"]
                          for step, (ssh, here) in per_step.items()]))
    print()
    print(json.dumps({
        "benchmark": "devices_scale", "devices": args.devices, "shell_rc": args.shell_rc, "cores": cores,
        "one_device_s": round(one_wall, 3), "fleet_s": round(fleet_wall, 3), "fleet_over_one": round(fleet_wall / one_wall, 2),
        "fleet_median_device_s": round(statistics.median(r.wall_seconds for r in fleet_results), 3),
        "one_device_cpu_s": round(one_cpu, 3), "fleet_cpu_per_device_s": round(fleet_cpu / args.devices, 3),
        "fleet_orchestrator_cpu_s": round(fleet_mine, 3), "fleet_cpu_floor_s": round(floor, 3),
        "fleet_over_floor": round(fleet_wall / floor, 2), "floor_over_one": round(floor / one_wall, 2),
        "local_s": round(local_wall, 3), "local_cpu_s": round(local_cpu, 3), "check_one_s": round(check_one, 3),
        "check_fleet_s": round(check_fleet, 3), "check_fleet_over_one": round(check_fleet / check_one, 2),
        "ssh_overhead_per_device_s": round(one_wall - local_wall, 3), "ssh_cpu_overhead_per_device_s": round(one_cpu - local_cpu, 3),
        "steps_one_s": {step: ssh for step, (ssh, _) in per_step.items()}, "steps_fleet_median_s": fleet_steps,
        "ssh_overhead_by_step_s": {step: round(ssh - here, 3) for step, (ssh, here) in per_step.items()},
        "shared_host": True,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
