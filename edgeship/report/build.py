"""Build report.md + report.json + PNGs from what the earlier stages wrote into a run folder.

A run folder holds: model.keras with metrics.json / history.json (train), bundle/ (export),
verify.json (parity), bench.json (bench), and devices/NAME/ from `edgeship device run`, whose bench
JSONs join the workstation's rows as machines of their own, like bench JSONs merged by hand
(`python -m edgeship.runtime bench --json`); each row is labelled with its machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import UsageError
from edgeship.files import atomic_write_json, atomic_write_text, ensure_directory
from edgeship.manifest import load_manifest
from edgeship.runtime.status import FAIL, HAS_RESULT, LEGACY, PASS, label
from edgeship.runtime.tables import cell, markdown_table


SAMPLE_ARTIFACTS = ("tflite-int8", "onnx")
FLIPPED_SHOWN = 18
"""Flipped pictures drawn per artifact (the verify JSON lists up to a hundred)."""


def _read_json(path: Path, what: str, required: bool = True) -> Any:
    if not path.is_file():
        if required:
            raise UsageError(f"{path} not found: {what}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); re-create it") from exc


def machine_label(machine: dict[str, Any]) -> str:
    """A short name for the machine a bench ran on; emulated machines say so."""
    label = machine.get("label") or f"{machine.get('cpu', '?')} ({machine.get('machine', '?')})"
    if machine.get("emulated"):
        label += " (emulated)"
    return label


def bench_rows(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """The measured rows of one bench JSON (schema 1 said ok, 2 says pass), each tagged with its machine's label."""
    label = machine_label(bench.get("machine", {}))
    rows = bench.get("rows", [])
    return [{**row, "machine_label": label} for row in rows if LEGACY.get(row.get("status", PASS), row.get("status")) in HAS_RESULT]


def build_report(run: str | Path, merge: list[str | Path] | None = None, bundle: str | Path | None = None) -> dict[str, Path]:
    """Write report.md, report.json and the charts into `run`; return the paths written."""
    from edgeship import plots
    from edgeship.recommend import format_recommendations, recommend

    run = Path(run)
    if not run.is_dir():
        raise UsageError(f"{run} is not a run folder; run `edgeship pipeline --out {run}` first")
    if bundle is None and not (run / "bundle").is_dir():
        raise UsageError(f"{run} is not a run folder (it has no bundle/); run `edgeship pipeline --out {run}` first, or give --bundle")
    bundle = Path(bundle) if bundle else run / "bundle"
    manifest = load_manifest(bundle)
    metrics = _read_json(run / "metrics.json", "train the model with `edgeship train --out RUN`", required=False)
    history = _read_json(run / "history.json", "", required=False)
    verify = _read_json(run / "verify.json", "run `edgeship verify BUNDLE --json RUN/verify.json`")
    bench = _read_json(run / "bench.json", "run `edgeship bench BUNDLE --json RUN/bench.json`", required=False)
    rows = bench_rows(bench) if bench else []
    machines = [bench["machine"]] if bench else []
    for extra in merge or []:
        device = _read_json(Path(extra), "give a JSON written by `python -m edgeship.runtime bench --json`")
        if "rows" not in device or "machine" not in device:
            raise UsageError(f"{extra} is not a bench JSON (no rows/machine); write one with `python -m edgeship.runtime bench --json`")
        rows += bench_rows(device)
        machines.append(device["machine"])
    for device_bench in sorted((run / "devices").glob("*/bench.json")):
        device = _read_json(device_bench, "written by `edgeship device run`")
        rows += bench_rows(device)
        machines.append(device["machine"])

    figures = ensure_directory(run / "figures")
    written: dict[str, Path] = {}
    by_name = {artifact.name: artifact for artifact in manifest.artifacts}
    parity = verify["rows"]

    if history:
        plots.plot_training_curves(history, figures / "curves.png", title=f"{manifest.source_model.get('architecture', 'model')} training")
        written["curves"] = figures / "curves.png"
    points = [
        {"name": row["artifact"], "bytes": by_name[row["artifact"]].bytes, "accuracy": row["comparison"]["accuracy"]}
        for row in parity
        if row["comparison"] and by_name.get(row["artifact"]) and by_name[row["artifact"]].bytes
    ]
    if points:
        plots.plot_accuracy_vs_size(points, figures / "accuracy_vs_size.png", verify["reference_accuracy"])
        written["accuracy_vs_size"] = figures / "accuracy_vs_size.png"
    int8 = next((row for row in parity if row["artifact"] == "tflite-int8" and row["comparison"]), None)
    if int8:
        plots.plot_confusion_matrix(int8["comparison"]["confusion_matrix"], manifest.labels, figures / "confusion_tflite_int8.png",
                                    f"tflite-int8 on {verify['images']} test images")
        written["confusion"] = figures / "confusion_tflite_int8.png"
    if rows:
        single = [row for row in rows if row["batch"] == 1]
        plots.plot_latency(
            [{"machine": row["machine_label"], "label": _row_label(row), "p50_ms": row["p50_ms"], "p90_ms": row["p90_ms"]} for row in single],
            figures / "latency.png",
            title="single-image latency per artifact, backend and threads",
        )
        written["latency"] = figures / "latency.png"
    rescued = {
        artifact.name: artifact.details["rescue"]["steps"]
        for artifact in manifest.artifacts
        if isinstance(artifact.details.get("rescue"), dict) and artifact.details["rescue"].get("steps")
    }
    if rescued:
        plots.plot_rescue_steps(rescued, figures / "rescue_steps.png", verify["reference_accuracy"])
        written["rescue_steps"] = figures / "rescue_steps.png"
    flipped_notes = _flipped_grids(verify, figures, written)
    sample = _sample_prediction(bundle, manifest)
    if sample:
        plots.plot_image_and_probabilities(sample["image"], sample["rows"], manifest.labels, figures / "sample_prediction.png", sample["true_label"])
        written["sample_prediction"] = figures / "sample_prediction.png"

    payload = {
        "run": str(run),
        "bundle": str(bundle),
        "model": metrics,
        "artifacts": [artifact.to_dict() for artifact in manifest.artifacts],
        "parity": verify,
        "bench": rows,
        "machines": machines,
        "figures": {name: str(path.relative_to(run)) for name, path in written.items()},
        "notes": flipped_notes,
    }
    recommendations = recommend(run, merge=merge, bundle=bundle)
    payload["recommendation"] = [rec.to_dict() for rec in recommendations]
    written["json"] = atomic_write_json(run / "report.json", payload)
    written["markdown"] = atomic_write_text(run / "report.md", render_markdown(payload, format_recommendations(recommendations)))
    return written


def _flipped_grids(verify: dict[str, Any], figures: Path, written: dict[str, Path]) -> list[str]:
    """One grid a artifact of the test pictures it labels differently from Keras; notes say what could not be drawn."""
    from edgeship import plots
    from edgeship.errors import EdgeshipError

    rows = [row for row in verify["rows"] if row.get("flipped")]
    if not rows:
        return []
    from edgeship.data import load_dataset

    try:
        images = load_dataset(verify["dataset"]).x_test
    except EdgeshipError as exc:
        return [f"the flipped pictures are not drawn: {exc}"]
    for row in rows:
        shown = row["flipped"][:FLIPPED_SHOWN]
        key = f"flipped_{row['artifact']}"
        path = figures / f"flipped_{row['artifact'].replace('-', '_')}.png"
        plots.plot_flipped_pictures(
            images[[flip["index"] for flip in shown]], shown, path,
            f"{row['artifact']}: {row.get('flipped_total', len(row['flipped']))} test pictures labelled differently from Keras",
        )
        written[key] = path
    return []


def _row_label(row: dict[str, Any]) -> str:
    accelerator = f" {row['accelerator']}" if row.get("accelerator") else ""
    threads = f"{row['threads']}t" if row.get("threads") else "default threads"
    picture = f" from {row['input']}" if row.get("input") else ""
    return f"{row['artifact']}{picture} · {row['backend']}{accelerator} · {threads}"


def _sample_prediction(bundle: Path, manifest: Any) -> dict[str, Any] | None:
    """The seed exercise's figure: golden image 0 with the Keras probabilities and those of int8 TFLite and ONNX."""
    from edgeship.runtime import Classifier
    from edgeship.runtime.bundle import Bundle

    if not manifest.golden:
        return None
    golden = Bundle(bundle, manifest).golden()
    # The first image the Keras model is less than 95% sure of shows more than one bar; else image 0.
    unsure = np.flatnonzero(golden["probabilities"].max(axis=1) < 0.95)
    index = int(unsure[0]) if len(unsure) else 0
    image = golden["images"][index:index + 1]
    rows = [("Keras", golden["probabilities"][index])]
    for name in SAMPLE_ARTIFACTS:
        artifact = next((a for a in manifest.artifacts if a.name == name and a.has_file), None)
        if artifact is None:
            continue
        with Classifier.load(bundle, artifact=name) as classifier:
            rows.append((name, classifier.predict_proba(image)[0]))
    return {"image": image[0], "rows": rows, "true_label": manifest.labels[int(golden["labels"][index])]}


def _rescue_section(payload: dict[str, Any]) -> list[str]:
    """The int8 rescue: every step of every rescued artifact, and the accuracy-vs-layers-in-float chart."""
    rows = []
    for artifact in payload["artifacts"]:
        rescue = artifact["details"].get("rescue")
        if not isinstance(rescue, dict) or not rescue.get("steps"):
            continue
        for step in rescue["steps"]:
            rows.append((
                artifact["name"], step["step"] + (" (kept)" if step["step"] == rescue["chosen"] else ""),
                "yes" if step["equalized"] else "no", len(step["float_layers"]), cell(step["accuracy"], ".4f"),
                cell(step["accuracy_delta_pp"], "+.2f"), cell(step["agreement"], ".2%"), cell(step["bytes"] / 1024, ".1f"),
                cell(step["latency_ms"], ".3f"), "✅" if step["within_budget"] else "❌",
            ))
    if not rows:
        return []
    budget = next(a["details"]["rescue"]["budget"] for a in payload["artifacts"] if isinstance(a["details"].get("rescue"), dict) and "budget" in a["details"]["rescue"])
    lines = [
        "## int8 rescue",
        "",
        f"Quantized files that missed their budget ({budget['min_agreement']:.0%} agreement, at most "
        f"{budget['max_accuracy_drop_pp']} pp accuracy lost) were exported again from the equalized model, then with "
        "their worst layers kept in float. Latency: single image, median, measured during export.",
        "",
        markdown_table(
            ("artifact", "step", "equalized", "layers in float", "accuracy", "Δ acc (pp)", "agreement", "size (KiB)",
             "latency (ms)", "within budget"),
            rows,
        ),
        "",
    ]
    if "rescue_steps" in payload["figures"]:
        lines += [f"![accuracy vs layers kept in float]({payload['figures']['rescue_steps']})", ""]
    return lines


def _flipped_section(payload: dict[str, Any]) -> list[str]:
    """The pictures each artifact labels differently from Keras, as grids."""
    grids = [(key.removeprefix("flipped_"), path) for key, path in payload["figures"].items() if key.startswith("flipped_")]
    if not grids and not payload.get("notes"):
        return []
    lines = ["## Pictures labelled differently from Keras", ""]
    for note in payload.get("notes", []):
        lines += [f"Note: {note}.", ""]
    for artifact, path in grids:
        lines += [f"![{artifact} flipped pictures]({path})", ""]
    return lines


def render_markdown(payload: dict[str, Any], recommendation: str | None = None) -> str:
    """The report page: model, parity, size, latency and figures, all from `payload` (the JSON twin)."""
    lines = [f"# edgeship report: {Path(payload['run']).name}", ""]
    model = payload["model"]
    if model:
        lines += [
            "## Model",
            "",
            markdown_table(
                ("architecture", "dataset", "parameters", "epochs", "seed", "test accuracy", "training time"),
                [(model["architecture"], model["dataset"], cell(model["parameters"], ","), model["epochs"], model["seed"],
                  cell(model["test_accuracy"], ".4f"), f"{model['training_seconds']:.1f} s")],
            ),
            "",
        ]
    figures = payload["figures"]
    if "curves" in figures:
        lines += [f"![training curves]({figures['curves']})", ""]
    parity = payload["parity"]
    sizes = {artifact["name"]: artifact["bytes"] for artifact in payload["artifacts"]}
    fp32 = sizes.get("tflite-fp32")
    parity_rows = []
    for row in parity["rows"]:
        comparison = row["comparison"] or {}
        size = sizes.get(row["artifact"])
        parity_rows.append((
            row["artifact"], row["precision"], cell(size and size / 1024, ".1f"), cell(size / fp32 if size and fp32 else None, ".0%"),
            cell(comparison.get("accuracy"), ".4f"), cell(comparison.get("accuracy_delta_pp"), "+.2f"),
            cell(comparison.get("agreement"), ".2%"), cell(comparison.get("max_abs_diff"), ".2e"),
            label(row["status"], "; ".join(row["failures"]) or row["reason"]),
        ))
    lines += [
        "## Parity: every artifact against the Keras model",
        "",
        f"Keras accuracy {parity['reference_accuracy']:.4f} on {parity['images']} test images of {parity['dataset']}.",
        "",
        markdown_table(
            ("artifact", "precision", "size (KiB)", "size vs tflite-fp32", "accuracy", "Δ acc (pp)", "agreement", "max abs Δp", "status"),
            parity_rows,
        ),
        "",
    ]
    for key, alt in (("accuracy_vs_size", "accuracy vs size"), ("confusion", "confusion matrix of tflite-int8")):
        if key in figures:
            lines += [f"![{alt}]({figures[key]})", ""]
    lines += _rescue_section(payload)
    lines += _flipped_section(payload)
    if payload["bench"]:
        lines += [
            "## Latency",
            "",
            "Per call (a batch of `batch` images), warm-up excluded. Emulated machines are labelled: their timings are not those of real hardware. "
            "Peak RSS is the measuring process's high-water mark: on the workstation it includes TensorFlow; "
            "`python -m edgeship.runtime bench` on a slim install gives the device figure.",
            "",
            markdown_table(
                ("machine", "artifact", "backend", "threads", "batch", "p50 (ms)", "p90 (ms)", "p99 (ms)", "CV", "images/s", "load (s)",
                 "peak RSS (MiB)", "notes"),
                [
                    (row["machine_label"], row["artifact"] + (f" from {row['input']}" if row.get("input") else ""), row["backend"] + (f" {row['accelerator']}" if row.get("accelerator") else ""),
                     row["threads"] or "default", row["batch"], cell(row["p50_ms"], ".3f"), cell(row["p90_ms"], ".3f"),
                     cell(row["p99_ms"], ".3f"), cell(row.get("cv"), ".2f"), cell(row["throughput_ips"], ",.0f"),
                     cell(row.get("load_seconds"), ".3f"), cell(row.get("peak_rss_mb"), ".0f"),
                     "; ".join(([label(row["status"], row.get("reason"))] if row.get("status") == FAIL else []) + row.get("flags", [])) or None)
                    for row in payload["bench"]
                ],
            ),
            "",
        ]
        if "latency" in figures:
            lines += [f"![latency]({figures['latency']})", ""]
    if "sample_prediction" in figures:
        lines += ["## One test image, three runtimes", "", f"![sample prediction]({figures['sample_prediction']})", ""]
    if recommendation:
        lines += ["## Recommendation", "", recommendation]
    if payload["machines"]:
        lines += ["## Machines", ""]
        for machine in payload["machines"]:
            details = ", ".join(f"{key}: {value}" for key, value in machine.items() if not isinstance(value, (dict, list)))
            lines.append(f"- {details}")
        lines.append("")
    return "\n".join(lines)
