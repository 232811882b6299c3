"""`taskforge list`: the registered families, their knobs and levels."""

from __future__ import annotations

import json

from rich.markup import escape
from rich.table import Table

from taskforge.cli.app import app, console
from taskforge.registry import families, generator_class


@app.command("list")
def list_families(as_json: bool = False) -> None:
    """List families with version, knobs (type and range) and levels."""
    rows = []
    for name in families():
        cls = generator_class(name)
        rows.append(
            {
                "family": name,
                "version": cls.version,
                "module": cls.__module__,
                "description": cls.description,
                "knobs": {k.name: {"range": k.describe(), "default": k.default} for k in cls.knobs},
                "levels": list(cls.levels),
            }
        )
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="taskforge families", show_lines=True)
    for col in ("family", "version", "knobs (range, default)", "levels (0 = easiest)"):
        table.add_column(col, overflow="fold")
    for r in rows:
        knobs = "\n".join(f"{k}: {v['range']} (={v['default']})" for k, v in r["knobs"].items())
        levels = "\n".join(
            f"{i}: " + ", ".join(f"{k}={v}" for k, v in lvl.items()) for i, lvl in enumerate(r["levels"])
        )
        table.add_row(
            f"{escape(r['family'])}\n[dim]{escape(r['module'])}[/]",
            escape(r["version"]),
            escape(knobs),
            escape(levels),
        )
    console.print(table)
