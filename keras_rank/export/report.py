"""Ratios and the Markdown table of an export run (`run.export_models`)."""

import pathlib
from typing import Any

from keras_rank import plots

FORMAT_LABELS = {
    "float32": "float32",
    "dynamic": "dynamic range",
    "float16": "float16",
    "int8": "int8",
    "qat_int8": "QAT int8",
}


def add_ratios(results: dict[str, Any]) -> None:
    """Adds ratios to every file's entry of `results`, in place.

    Always: ``drop_vs_own_float32_pt``, the test accuracy lost against the
    same model's float32 file (points). With a baseline: ``size_ratio``
    (baseline float32 file size / this file's: how many times smaller),
    ``latency_ratio`` (this latency / the baseline's in the same format),
    ``latency_ratio_above_floor`` (the same with the invocation floor,
    ``results["latency_floor_us"]``, taken off both),
    ``flops_ratio`` (this model's FLOPs / the baseline's) and
    ``drop_vs_dense_float32_pt``.

    Args:
        results: What `export_models` collected.
    """
    models = results["models"]
    base = models.get(results["baseline"]) if results["baseline"] else None
    base_float = base["formats"].get("float32") if base else None
    for entry in models.values():
        own_float = entry["formats"].get("float32")
        for fmt, file in entry["formats"].items():
            if own_float:
                file["drop_vs_own_float32_pt"] = 100 * (
                    own_float["test_accuracy"] - file["test_accuracy"]
                )
            if base is None:
                continue
            file["flops_ratio"] = entry["keras"]["flops_mac1"] / max(
                base["keras"]["flops_mac1"], 1
            )
            same = base["formats"].get(fmt)
            if same and "latency" in file:
                own, theirs = file["latency"]["median_us"], same["latency"]["median_us"]
                file["latency_ratio"] = own / theirs
                floor = results.get("latency_floor_us")
                if floor is not None and theirs > floor:
                    file["latency_ratio_above_floor"] = (own - floor) / (theirs - floor)
            if base_float:
                file["size_ratio"] = base_float["size_bytes"] / file["size_bytes"]
                file["drop_vs_dense_float32_pt"] = 100 * (
                    base_float["test_accuracy"] - file["test_accuracy"]
                )


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown_table(results: dict[str, Any]) -> str:
    """Returns one row per model and format, as a Markdown table.

    Args:
        results: What `export_models` returned (ratios added).
    """
    header = (
        "| model | format | file KB | params (file) | x smaller | latency µs | "
        "latency ratio | above floor | FLOPs ratio | test acc % | Δ own fp32 pt | "
        "Δ dense fp32 pt | max abs Δ out | agree % |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, entry in results["models"].items():
        for fmt, file in entry["formats"].items():
            latency = file.get("latency", {}).get("median_us")
            lines.append(
                f"| {name} | {FORMAT_LABELS[fmt]} | {file['size_bytes'] / 1024:,.1f} | "
                f"{file['params']:,} | {_cell(file.get('size_ratio'), '.1f')} | "
                f"{_cell(latency, ',.1f')} | "
                f"{_cell(file.get('latency_ratio'), '.3f')} | "
                f"{_cell(file.get('latency_ratio_above_floor'), '.3f')} | "
                f"{_cell(file.get('flops_ratio'), '.3f')} | "
                f"{100 * file['test_accuracy']:.2f} | "
                f"{_cell(file.get('drop_vs_own_float32_pt'), '+.2f')} | "
                f"{_cell(file.get('drop_vs_dense_float32_pt'), '+.2f')} | "
                f"{file['max_abs_diff']:.2g} | "
                f"{100 * file['class_agreement']:.2f} |"
            )
    floor = results.get("latency_floor_us")
    if floor is not None:
        lines += [
            "",
            f"Invocation floor: {floor:.1f} µs (Flatten + Dense(1) on the same "
            "input, timed in the same run); 'above floor' takes it off both "
            "latencies of a ratio.",
        ]
    return "\n".join(lines)


def plot_accuracy(results: dict[str, Any], path: pathlib.Path) -> pathlib.Path:
    """Plots each file's test accuracy against its size and its latency.

    Args:
        results: What `export_models` collected.
        path: The PNG to write.

    Returns:
        `path`.
    """
    points = [
        {
            "model": name,
            "format": FORMAT_LABELS[fmt],
            "size_kb": file["size_bytes"] / 1024,
            "latency_us": file.get("latency", {}).get("median_us"),
            "accuracy_pct": 100 * file["test_accuracy"],
        }
        for name, entry in results["models"].items()
        for fmt, file in entry["formats"].items()
    ]
    return plots.plot_export_points(points, path)
