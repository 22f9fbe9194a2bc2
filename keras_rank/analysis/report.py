"""The analysis report as Markdown (with PNG files) and one self-contained HTML page.

The report is a list of blocks (headings, paragraphs, tables, images, links)
built once from ``analysis.json``'s content and rendered twice:
``report.md`` refers to the PNGs beside it, ``report.html`` embeds them as
data URIs so that the page alone can be mailed or attached.
"""

import base64
import dataclasses
import html
import pathlib
from typing import Any


@dataclasses.dataclass(frozen=True)
class Block:
    """One piece of the report.

    Attributes:
        kind: "h1", "h2", "p", "table", "img" or "link".
        text: The heading or paragraph text, the image's caption or the
            link's text.
        file: The image or linked file (a name in the report's folder).
        header: The table's column names.
        rows: The table's rows of cell strings.
    """

    kind: str
    text: str = ""
    file: str = ""
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100.0 * value:.2f}"


def _pruning_blocks(section: dict[str, Any]) -> list[Block]:
    width, curves = section["units"], section["curves"]
    rows = []
    for index, count in enumerate(section["counts"]):
        cells = [f"{count} ({100.0 * count / width:.0f} %)"]
        for curve in curves:
            cell = _percent(curve["accuracy"][index])
            if curve["std"] is not None:
                cell += f" +- {_percent(curve['std'][index])}"
            cells.append(cell)
        rows.append(tuple(cells))
    half = section["half"]
    ranking = sorted(half["accuracy"].items(), key=lambda item: -item[1])
    text = (
        f"At {half['units_pruned']} of {width} units pruned "
        f"({100.0 * half['units_pruned'] / width:.0f} %), test accuracy by "
        "criterion: "
        + ", ".join(f"{name} {_percent(value)} %" for name, value in ranking)
        + "."
    )
    blocks = [
        Block("h2", f"Pruning units of {section['layer']} ({width} units)"),
        Block(
            "p",
            "Greedy structured pruning without retraining (Heitmann, section "
            "3.1). max_magnitude removes the smallest-norm unit first (the "
            "pruned matrix keeps the largest norm), max_frame_potential the "
            "unit of smallest contribution to the frame potential of the "
            "normalised rows; min_* remove from the other end; random is "
            "the mean of several orders. Test accuracy in %.",
        ),
        Block(
            "table",
            header=("units pruned", *(curve["criterion"] for curve in curves)),
            rows=tuple(rows),
        ),
        Block("p", text),
        Block("img", f"pruning curves of {section['layer']}", section["plot"]),
    ]
    if "model" in half:
        blocks.append(
            Block(
                "link",
                f"the model pruned by {half['best']} ({half['params']:,} "
                "parameters, a plain Keras model that saves and exports)",
                half["model"],
            )
        )
    return blocks


def _spectra_blocks(section: dict[str, Any]) -> list[Block]:
    rows = tuple(
        (
            layer["name"],
            f"{layer['units']} x {layer['inputs']}",
            f"{layer['q']:.3g}",
            f"{layer['variance']:.3g}",
            f"{layer['ks_init']:.3f}" if layer["ks_init"] is not None else "",
            f"{layer['ks_trained']:.3f}",
            f"{layer['above_edge_trained']}",
            f"{layer['elbow_rank']}",
            f"{layer['kept_norm_percent']:.1f}",
            f"{layer['params_at_elbow_rank']:,} / {layer['params']:,}",
            _percent(layer["accuracy_at_elbow_rank"]),
            layer["init_source"],
        )
        for layer in section["layers"]
    )
    return [
        Block("h2", "Weight spectra against Marchenko-Pastur"),
        Block(
            "p",
            "ESD of X = W W^T per layer (W: units x inputs) and the "
            "Marchenko-Pastur law of a random matrix of the layer's shape and "
            "init variance (Heitmann, section 3.3). KS is the Kolmogorov-"
            "Smirnov distance of the ESD to that law; eigenvalues above the MP "
            "edge are directions training put in. The elbow rank k is the "
            "knee of the residual curve ||W - W_k|| / ||W|| in the "
            f"{section['layers'][0]['residual_norm']} norm; ||W_k|| / ||W|| is in "
            "the Frobenius norm; the accuracy is the model's with W replaced "
            "by W_k (no retraining).",
        ),
        Block(
            "table",
            header=(
                "layer",
                "W",
                "Q = inputs/units",
                "init variance",
                "KS init",
                "KS trained",
                "eigenvalues above MP edge",
                "elbow rank k",
                "||W_k|| / ||W|| (%)",
                "weights of W_k as U V / of W",
                "accuracy at k (%)",
                "init",
            ),
            rows=rows,
        ),
        Block("img", "spectra", section["plot"]),
        Block("img", "rank-k residuals", section["residual_plot"]),
    ]


def _graph_blocks(section: dict[str, Any]) -> list[Block]:
    frames = section["frames"]
    keys = [key for key in frames[0] if key != "label"]
    rows = tuple(
        (str(frame["label"]), *(_cell(frame[key]) for key in keys)) for frame in frames
    )
    blocks = [
        Block("h2", f"Cosine graph of the units of {section['layer']}"),
        Block(
            "p",
            "Nodes are units (size: norm), edges join units whose cosine "
            "similarity gives a weight exp(-(1 - cos) / sigma^2) above the "
            f"threshold (Heitmann, section 3.2). Weights: {section['source']}.",
        ),
        Block("table", header=("frame", *keys), rows=rows),
    ]
    blocks += [Block("img", picture, picture) for picture in section["pictures"]]
    blocks.append(
        Block("link", "interactive page with a slider over epochs", section["page"])
    )
    return blocks


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _method_count(results: dict[str, Any]) -> str:
    """The method's own parameter count, where it differs from the plain one."""
    if results["method_params"] == results["params"]:
        return ""
    return f"; {results['method_params']:,} by the method's own count (e.g. DLRA's W')"


def report_blocks(results: dict[str, Any]) -> list[Block]:
    """Returns the report's blocks from the content of ``analysis.json``."""
    return [
        Block("h1", f"Redundancy analysis of {results['model_path']}"),
        Block(
            "p",
            f"Data: {results['data']}. Test accuracy "
            f"{_percent(results['test_accuracy'])} %, {results['params']:,} "
            "parameters (the plain model as it exports)" + _method_count(results) + ".",
        ),
        *_pruning_blocks(results["pruning"]),
        *_spectra_blocks(results["spectra"]),
        *_graph_blocks(results["graph"]),
    ]


def _markdown(blocks: list[Block]) -> str:
    lines = []
    for block in blocks:
        if block.kind in ("h1", "h2"):
            lines.append(f"{'#' * int(block.kind[1])} {block.text}")
        elif block.kind == "p":
            lines.append(block.text)
        elif block.kind == "table":
            lines.append("| " + " | ".join(block.header) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(row) + " |" for row in block.rows]
        elif block.kind == "img":
            lines.append(f"![{block.text}]({block.file})")
        else:
            lines.append(f"[{block.text}]({block.file})")
        lines.append("")
    return "\n".join(lines)


def _html(blocks: list[Block], folder: pathlib.Path) -> str:
    body = []
    for block in blocks:
        text = html.escape(block.text)
        if block.kind in ("h1", "h2", "p"):
            body.append(f"<{block.kind}>{text}</{block.kind}>")
        elif block.kind == "table":
            head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif block.kind == "img":
            data = base64.b64encode((folder / block.file).read_bytes()).decode()
            body.append(
                f'<figure><img alt="{text}" src="data:image/png;base64,{data}">'
                f"<figcaption>{text}</figcaption></figure>"
            )
        else:
            body.append(f'<p><a href="{html.escape(block.file)}">{text}</a></p>')
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:90%}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "img{max-width:100%}"
    )
    title = html.escape(blocks[0].text)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_report(results: dict[str, Any], folder: pathlib.Path) -> pathlib.Path:
    """Writes report.md and report.html into `folder`; returns the HTML's path.

    Args:
        results: The content of ``analysis.json`` (`analysis.run.analyze`).
        folder: The analysis folder holding the PNGs the results name.
    """
    blocks = report_blocks(results)
    (folder / "report.md").write_text(_markdown(blocks))
    page = folder / "report.html"
    page.write_text(_html(blocks, folder))
    return page
