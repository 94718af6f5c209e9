"""LiteRT's own benchmark (ai_edge_litert/tools/benchmark_litert_model.py) beside edgeship's runtime bench, on the same files.

Files: the seed MLP's tflite-fp32 and tflite-int8 (trained 5 epochs on the bundled sample and
exported by edgeship, or --mlp BUNDLE) and MobileNetV2 alpha 0.35 96x96 RGB fp32 and int8
(benchmarks/mobilenetv2_rgb.py: keras.applications with weights=None, converted straight with the
TFLite converter, since edgeship's export takes grayscale digits only). All on the CPU, one thread.

Theirs: CompiledModel on the CPU, random input written once, `run_by_name` timed alone, median
rounded to 0.01 ms. Ours: `python -m edgeship.runtime bench FILE --batch 1 --threads 1` on the
bare file, p50 in µs, once with `--backend litert-compiled` (the same API as theirs) and once with
the default Interpreter (litert). Ours times Classifier.predict on a uint8 image: the scaling to
the model's input, the write into the input buffer, the run, the read back and the argmax, so it can only be
slower; the gap is that per-image work, which shows on the MLP (a few µs on a run of a few µs)
and vanishes on MobileNetV2. The check: the medians agree within 10% where theirs is >= 0.1 ms
(below that their 0.01 ms rounding alone is >= 10%). Each tool runs ROUNDS times, alternating, and
the median of the medians is compared, since the machine may be loaded. Exit 1 when a check fails.
Run: `.venv/bin/python benchmarks/litert_crosscheck.py [--out DIR] [--mlp BUNDLE]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

ROUNDS = 3
TOLERANCE = 0.10
THEIR_FLOOR_MS = 0.1
THEIR_RUNS = {"mlp": 2000, "mobilenetv2": 300}


def theirs(model: Path, runs: int, workdir: Path) -> dict:
    """LiteRT's benchmark_litert_model.py on the CPU, one thread: its result JSON (milliseconds, 0.01 ms resolution)."""
    result = workdir / f"{model.stem}-theirs.json"
    command = [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={model}",
               f"--num_runs={runs}", f"--warmup_runs={max(5, runs // 20)}", "--num_threads=1", f"--result_json={result}"]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(result.read_text())


def ours(model: Path, backend: str, seconds: float, workdir: Path) -> dict:
    """edgeship's runtime bench of the bare file on one backend, batch 1, one thread: its bench row."""
    result = workdir / f"{model.stem}-{backend}.json"
    command = [sys.executable, "-m", "edgeship.runtime", "bench", str(model), "--backend", backend, "--threads", "1",
               "--batch", "1", "--seconds", str(seconds), "--json", str(result)]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(result.read_text())["rows"][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget of each of our bench rows (default: 1.0 s)")
    parser.add_argument("--out", help="keep the models and results here (default: a temporary folder)")
    parser.add_argument("--mlp", help="an MLP bundle to reuse (default: train and export one)")
    args = parser.parse_args()

    from litert_compiled import bundle_for
    from mobilenetv2_rgb import make_files

    from edgeship.runtime.tables import markdown_table

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgeship-crosscheck-"))
    mlp = bundle_for("mlp", root, args.mlp)
    mobilenet = make_files(root / "mobilenetv2")
    files = [("mlp fp32", mlp / "model_fp32.tflite", "mlp"), ("mlp int8", mlp / "model_int8.tflite", "mlp"),
             ("mobilenetv2 fp32", mobilenet["fp32"], "mobilenetv2"), ("mobilenetv2 int8", mobilenet["int8"], "mobilenetv2")]
    workdir = root / "crosscheck"
    workdir.mkdir(parents=True, exist_ok=True)

    rows, results, failed = [], {}, []
    for name, model, kind in files:
        print(f"  {name}", file=sys.stderr, flush=True)
        their_medians, compiled_p50s, interpreter_p50s, fully = [], [], [], None
        for _ in range(ROUNDS):
            their_result = theirs(model, THEIR_RUNS[kind], workdir)
            their_medians.append(their_result["latency"]["median_ms"])
            fully = their_result["fully_accelerated"]
            compiled_p50s.append(ours(model, "litert-compiled", args.seconds, workdir)["p50_ms"])
            interpreter_p50s.append(ours(model, "litert", args.seconds, workdir)["p50_ms"])
        their_ms, compiled_ms, interpreter_ms = (statistics.median(values) for values in (their_medians, compiled_p50s, interpreter_p50s))
        checked = their_ms >= THEIR_FLOOR_MS
        gap = compiled_ms / their_ms - 1 if their_ms else None
        within = gap is not None and abs(gap) <= TOLERANCE
        if checked and not within:
            failed.append(name)
        if not checked:
            verdict = f"not checked: theirs < {THEIR_FLOOR_MS} ms at 0.01 ms resolution"
        else:
            verdict = "agree" if within else "DISAGREE"
        results[name] = {"theirs_median_ms": their_ms, "theirs_rounds": their_medians, "ours_compiled_p50_ms": round(compiled_ms, 4),
                         "ours_interpreter_p50_ms": round(interpreter_ms, 4), "gap": None if gap is None else round(gap, 3),
                         "checked": checked, "within_tolerance": within, "fully_accelerated_per_litert": fully}
        rows.append((name, f"{their_ms:.2f}", f"{compiled_ms * 1000:.1f}", f"{interpreter_ms * 1000:.1f}",
                     "–" if gap is None else f"{gap:+.1%}", str(fully), verdict))
    headers = ("file", "theirs median ms", "ours litert-compiled p50 µs", "ours litert (Interpreter) p50 µs",
               "ours/theirs − 1", "LiteRT: fully accelerated", "check (±10% where theirs ≥ 0.1 ms)")
    print(markdown_table(headers, rows))
    print(json.dumps({"benchmark": "litert_crosscheck", "rounds": ROUNDS, "results": results, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
