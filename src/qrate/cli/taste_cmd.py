"""``qrate taste show``: the learned taste model in words (docs/taste.md)."""

from __future__ import annotations

from typing import Optional

import typer

from qrate.cli import app
from qrate.cli.common import DB_OPTION, echo_json, open_workspace, stdout

taste_app = typer.Typer(help="The learned taste model (docs/taste.md).", no_args_is_help=True,
                        rich_markup_mode=None)
app.add_typer(taste_app, name="taste")


@taste_app.command("show")
def show(
    db: Optional[str] = DB_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print the model (weights, default, training summary) as JSON."),
) -> None:
    """Explain the model `qrate learn` trained: what you value more or less than qrate's default."""
    from qrate.passes import taste as taste_mod

    with open_workspace(db, False, readonly=True) as ws:
        model = ws.index.taste_model() or taste_mod.default_model()
    if json_out:
        echo_json(model)
        return
    for text in taste_mod.describe(model):
        stdout.print(text)
