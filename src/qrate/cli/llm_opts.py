"""Options and helpers shared by the commands that can use the local LLM (docs/llm.md)."""

from __future__ import annotations

from typing import Optional

import typer

NL_OPT = typer.Option("rules", "--nl", help="How words become a plan: rules (default, no AI), llm (a local "
                      "model fills the intent slots), auto (rules, and the LLM only for words the rules "
                      "did not understand).")
LLM_MODEL_OPT = typer.Option(None, "--llm-model", help="A GGUF model for --nl llm|auto and --polish "
                             "(default: $QRATE_LLM_MODEL, llm_model in config.yaml, the Gemma 3 270M package).")
VERBOSE_OPT = typer.Option(False, "--verbose", "-v", help="Report the LLM's load time and per-request latency.")


class LazyFiller:
    """Loads the model on the first request: ``--nl auto`` on words the rules fully understand
    never loads it."""

    def __init__(self, model: Optional[str]) -> None:
        self.model = model
        self.llm = None
        self._filler = None

    def fill(self, text: str, feedback: Optional[str] = None) -> str:
        if self._filler is None:
            from qrate.extras.llm import SlotFiller, load

            self.llm = load(self.model)
            self._filler = SlotFiller(self.llm)
        return self._filler.fill(text, feedback)


def check_nl(nl: str) -> None:
    from qrate.errors import UsageError
    from qrate.frontend.nl import MODES

    if nl not in MODES:
        raise UsageError(f"--nl must be one of {', '.join(MODES)}, not {nl!r}")


def filler_for(nl: str, model: Optional[str]) -> Optional[LazyFiller]:
    check_nl(nl)
    return None if nl == "rules" else LazyFiller(model)


def report_llm(llm, console) -> None:
    """--verbose: load time and each request's latency."""
    if llm is None:
        console.print("llm: not loaded (nothing needed it)", markup=False)
        return
    console.print(f"llm: {llm.path} (from {llm.source}) loaded in {llm.load_s:.2f}s", markup=False)
    for purpose, seconds, tokens in llm.calls:
        rate = f", {tokens / seconds:.1f} tokens/s" if seconds > 0 and tokens else ""
        console.print(f"llm: {purpose} request {seconds:.2f}s, {tokens} tokens{rate}", markup=False)
