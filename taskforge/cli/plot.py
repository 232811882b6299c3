"""`taskforge plot RUN_LOG -o run.png`: per family, the difficulty chosen and the pass rate observed over time,
and the held-out pass@1 per level where the run evaluated one (`eval_every`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from taskforge.cli.app import app, say
from taskforge.errors import DatasetError, MissingExtraError
from taskforge.io import check_writable
from taskforge.trainers.heldout import PREFIX as HELDOUT


def read_run_log(path: Path, event: str = "observe") -> dict[str, list[dict[str, Any]]]:
    """The `observe` records of a stream's JSONL run log, grouped by family, in order; with
    event="heldout", the held-out evaluations (`heldout/pass@1/<family>/<level>` keys), by family."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read run log {path}: {exc}") from None
    out: dict[str, list[dict[str, Any]]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise DatasetError(f"{path}:{n}: not a JSON line") from None
        if not isinstance(rec, dict):
            raise DatasetError(f"{path}:{n}: not a run-log record")
        if event == "observe" and rec.get("event") == "observe" and rec.get("pass_rate") is not None:
            out.setdefault(str(rec.get("family", "?")), []).append(rec)
        elif event == "heldout" and rec.get("event") == "heldout":
            for key, value in rec.items():
                if key.startswith(HELDOUT):
                    family, level = key[len(HELDOUT) :].rsplit("/", 1)
                    out.setdefault(family, []).append(
                        {"observed": rec.get("observed", 0), "level": level, "pass@1": value}
                    )
    if not out and event == "observe":
        raise DatasetError(f"{path}: no observed groups in this run log (is it a TaskStream log?)")
    return out


@app.command("plot")
def plot(
    run_log: Path = typer.Argument(..., help="a TaskStream run log (JSONL)"),
    output: Path = typer.Option(Path("run.png"), "-o", "--output", help="image to write (.png, .svg, .pdf)"),
    window: int = typer.Option(32, help="groups in the moving average of the pass rate"),
) -> None:
    """Plot, per family, the difficulty chosen, the training pass rate and the held-out pass@1 per level."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("taskforge plot needs matplotlib: pip install 'taskforge[train]'") from None
    families = read_run_log(run_log)
    heldout = read_run_log(run_log, "heldout")
    check_writable(output)
    fig, axes = plt.subplots(len(families), 1, figsize=(8, 2.8 * len(families)), squeeze=False)
    for ax, (family, recs) in zip(axes[:, 0], sorted(families.items()), strict=True):
        recs = sorted(recs, key=lambda r: r.get("observed", 0))  # groups finish out of proposal order
        x = [r.get("observed", i) for i, r in enumerate(recs)]
        diff = [float(r.get("difficulty") or 0.0) for r in recs]
        rate = [float(r["pass_rate"]) for r in recs]
        avg = [
            sum(rate[max(0, i - window + 1) : i + 1]) / len(rate[max(0, i - window + 1) : i + 1])
            for i in range(len(rate))
        ]
        ax.scatter(x, diff, s=4, color="tab:blue", alpha=0.5, label="difficulty chosen")
        ax.set_ylabel(f"{family}\ndifficulty", color="tab:blue")
        ax2 = ax.twinx()
        ax2.plot(x, avg, color="tab:red", lw=1.5, label=f"pass rate ({window}-group mean)")
        if any("predicted_p" in r for r in recs):
            ax2.plot(
                x,
                [r.get("predicted_p", float("nan")) for r in recs],
                color="tab:gray",
                lw=0.8,
                alpha=0.7,
                label="predicted pass rate",
            )
        by_level: dict[str, list[dict[str, Any]]] = {}
        for r in heldout.get(family, []):
            by_level.setdefault(r["level"], []).append(r)
        for level, pts in sorted(by_level.items()):
            ax2.plot(
                [p["observed"] for p in pts],
                [p["pass@1"] for p in pts],
                marker="o",
                ms=3,
                lw=1,
                ls="--",
                label=f"held-out pass@1 {level}",
            )
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("pass rate", color="tab:red")
        ax2.legend(loc="upper left", fontsize=7)
    axes[-1, 0].set_xlabel("groups observed")
    fig.tight_layout()
    try:
        fig.savefig(output, dpi=90)
    except ValueError as exc:  # an image format matplotlib does not know
        raise DatasetError(f"cannot write {output}: {exc}") from None
    finally:
        plt.close(fig)
    total = sum(len(v) for v in families.values())
    say(f"wrote {output} ({total} groups, {len(families)} families)")
