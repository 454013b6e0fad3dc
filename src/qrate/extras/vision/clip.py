"""CLIP, optional: zero-shot subjects and image embeddings from open_clip checkpoints that the
user supplies (``--clip-weights PATH``, ``$QRATE_CLIP_WEIGHTS`` or ``clip_weights:`` in the config
file; the CLI finds the path, this module loads it). No registry package ships CLIP weights and
nothing is downloaded.

``open_clip_torch`` itself cannot be imported here: it imports torchvision, which does not load
with the CPU torch qrate uses. So the network is defined in this module with open_clip's module
tree (``visual.conv1``, ``visual.transformer.resblocks.N.attn.in_proj_weight``, ``token_embedding``,
``text_projection``, ``logit_scale`` ...): the state dict of an open_clip ``CLIP`` model with a
ViT image tower and the standard text transformer (ViT-B-32, ViT-B-16, ViT-L-14, ViT-H-14 ...,
OpenAI's and LAION's weights saved as state dicts) loads strictly. Shapes come from the state
dict; what shapes cannot tell (attention head width, QuickGELU) from the model name: the
``model_configs/NAME.json`` of an installed ``open_clip_torch`` (read as a file, never imported),
else a built-in table, or a config given explicitly (open_clip's JSON format).

The tokenizer is CLIP's byte-level BPE, reading ``bpe_simple_vocab_16e6.txt.gz`` from beside the
weights or from the installed ``open_clip_torch`` package (``pip install --no-deps
open_clip_torch``); for ordinary text it gives open_clip's tokens (it does not run ftfy).

Embeddings are L2-normalised and rounded to 4 digits; torch runs with one thread.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import math
import os
import re
import threading
from functools import lru_cache

import numpy as np

from qrate.errors import QrateError

DIGITS = 4
THREADS = 1
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI's CLIP image statistics (open_clip's default)
STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHTS_HINT = ("give an open_clip checkpoint (a state dict, .pt/.bin/.safetensors) with --clip-weights PATH, "
                "QRATE_CLIP_WEIGHTS or clip_weights: in the config file (docs/vision.md)")
VOCAB_HINT = f"pip install --no-deps open_clip_torch==3.3.0 (it ships {VOCAB_FILE}), or put the file beside the weights"

#: what shapes cannot tell, per open_clip model name (used when open_clip_torch's configs are absent)
KNOWN_MODELS = {
    "ViT-B-32": {"head_width": 64}, "ViT-B-16": {"head_width": 64}, "ViT-L-14": {"head_width": 64},
    "ViT-L-14-336": {"head_width": 64}, "ViT-H-14": {"head_width": 80}, "ViT-g-14": {"head_width": 88},
    "ViT-bigG-14": {"head_width": 104},
}

#: zero-shot prompts of the subjects (qrate.plan.models.SUBJECTS less "people", which is portrait or group)
SUBJECT_PROMPTS = {
    "portrait": "a portrait photo of a person",
    "group": "a photo of a group of people",
    "landscape": "a photo of a landscape",
    "food": "a photo of food",
    "animal": "a photo of an animal",
    "architecture": "a photo of a building",
    "night": "a photo taken at night",
    "sports": "a photo of people playing sports",
    "macro": "a macro close-up photo",
    "document": "a photo of a document",
    "other": "a photo",
}

# what open_clip configs may say that this loader does not implement (their value must be the default)
_UNSUPPORTED = {
    "vision_cfg": {"timm_model_name": None, "attentional_pool": False, "no_ln_pre": False, "final_ln_after_pool": False,
                   "pool_type": "tok", "pos_embed_type": "learnable", "qk_norm": False, "scaled_cosine_attn": False,
                   "scale_heads": False, "scale_attn_inner": False, "scale_attn": False, "scale_fc": False,
                   "block_type": None, "act_kwargs": None, "norm_kwargs": None},
    "text_cfg": {"hf_model_name": None, "embed_cls": False, "no_causal_mask": False, "final_ln_after_pool": False,
                 "pool_type": "argmax", "proj_bias": False, "proj_type": "linear", "qk_norm": False,
                 "scaled_cosine_attn": False, "scale_heads": False, "scale_attn_inner": False, "scale_attn": False,
                 "scale_fc": False, "block_type": None, "act_kwargs": None, "norm_kwargs": None,
                 "hf_tokenizer_name": None},
}


def _torch():
    try:
        import torch
    except ImportError:
        from qrate.extras.vision import INSTALL_HINT

        raise QrateError("CLIP needs the optional 'vision' extra (torch is not installed)", hint=INSTALL_HINT) from None
    return torch


# ---------------------------------------------------------------------------------------------
# the network (open_clip's module tree, inference only)


def _build_classes():
    torch = _torch()
    from torch import nn
    from torch.nn import functional as F

    class LayerNorm(nn.LayerNorm):
        def forward(self, x):
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    class QuickGELU(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(1.702 * x)

    class LayerScale(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            return x * self.gamma

    class Block(nn.Module):
        def __init__(self, width: int, heads: int, mlp: int, quick_gelu: bool, layer_scale: bool) -> None:
            super().__init__()
            self.ln_1 = LayerNorm(width)
            self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
            self.ls_1 = LayerScale(width) if layer_scale else nn.Identity()
            self.ln_2 = LayerNorm(width)
            self.mlp = nn.Sequential()
            self.mlp.add_module("c_fc", nn.Linear(width, mlp))
            self.mlp.add_module("gelu", QuickGELU() if quick_gelu else nn.GELU())
            self.mlp.add_module("c_proj", nn.Linear(mlp, width))
            self.ls_2 = LayerScale(width) if layer_scale else nn.Identity()

        def forward(self, x, attn_mask=None):
            y = self.ln_1(x)
            x = x + self.ls_1(self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0])
            return x + self.ls_2(self.mlp(self.ln_2(x)))

    class Transformer(nn.Module):
        def __init__(self, width, layers, heads, mlp, quick_gelu, layer_scale) -> None:
            super().__init__()
            self.resblocks = nn.ModuleList(Block(width, heads, mlp, quick_gelu, layer_scale) for _ in range(layers))

        def forward(self, x, attn_mask=None):
            for blk in self.resblocks:
                x = blk(x, attn_mask)
            return x

    class Visual(nn.Module):
        def __init__(self, c: dict, embed_dim: int, quick_gelu: bool) -> None:
            super().__init__()
            w, p = c["width"], c["patch_size"]
            grid = c["image_size"] // p
            self.image_size = c["image_size"]
            self.conv1 = nn.Conv2d(3, w, kernel_size=p, stride=p, bias=False)
            self.class_embedding = nn.Parameter(torch.zeros(w))
            self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, w))
            self.ln_pre = LayerNorm(w)
            self.transformer = Transformer(w, c["layers"], c["heads"], c["mlp"], quick_gelu, c["layer_scale"])
            self.ln_post = LayerNorm(w)
            self.proj = nn.Parameter(torch.zeros(w, embed_dim))

        def forward(self, x):
            x = self.conv1(x)
            x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
            cls = self.class_embedding.reshape(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
            x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
            x = self.transformer(self.ln_pre(x))
            return self.ln_post(x[:, 0]) @ self.proj

    class CLIP(nn.Module):
        def __init__(self, cfg: dict) -> None:
            super().__init__()
            v, t, quick = cfg["vision"], cfg["text"], cfg["quick_gelu"]
            self.visual = Visual(v, cfg["embed_dim"], quick)
            self.context_length = t["context_length"]
            self.transformer = Transformer(t["width"], t["layers"], t["heads"], t["mlp"], quick, t["layer_scale"])
            self.token_embedding = nn.Embedding(t["vocab_size"], t["width"])
            self.positional_embedding = nn.Parameter(torch.zeros(t["context_length"], t["width"]))
            self.ln_final = LayerNorm(t["width"])
            self.text_projection = nn.Parameter(torch.zeros(t["width"], cfg["embed_dim"]))
            self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
            if cfg.get("logit_bias"):
                self.logit_bias = nn.Parameter(torch.zeros([]))
            mask = torch.full((t["context_length"], t["context_length"]), float("-inf")).triu_(1)
            self.register_buffer("attn_mask", mask, persistent=False)

        def encode_image(self, x):
            return F.normalize(self.visual(x), dim=-1)

        def encode_text(self, tokens):
            x = self.token_embedding(tokens) + self.positional_embedding
            x = self.ln_final(self.transformer(x, self.attn_mask))
            x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection
            return F.normalize(x, dim=-1)

    return CLIP


_classes = None


def build_model(cfg: dict):
    """A CLIP module for a resolved config (:func:`config_from_state`); weights uninitialised."""
    global _classes
    if _classes is None:
        _classes = _build_classes()
    return _classes(cfg)


# ---------------------------------------------------------------------------------------------
# configs


def _open_clip_dir() -> str | None:
    try:
        spec = importlib.util.find_spec("open_clip")  # finds the package without importing it
    except (ImportError, ValueError):
        return None
    locs = list(spec.submodule_search_locations or []) if spec else []
    return locs[0] if locs else None


def named_config(model_name: str) -> dict:
    """open_clip's JSON config for ``model_name`` (from an installed open_clip_torch, read as a
    file), else what :data:`KNOWN_MODELS` says; {} for an unknown name."""
    base = _open_clip_dir()
    if base and re.fullmatch(r"[A-Za-z0-9._-]+", model_name or ""):
        path = os.path.join(base, "model_configs", model_name + ".json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
    name = model_name or ""
    quick = name.endswith("-quickgelu")
    known = KNOWN_MODELS.get(name.removesuffix("-quickgelu"))
    if known is None:
        return {}
    return {"quick_gelu": quick, "vision_cfg": dict(known), "text_cfg": {}}


def _layers(state: dict, prefix: str) -> int:
    idx = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
    return max(idx) + 1 if idx else 0


def config_from_state(state: dict, given: dict | None, source: str) -> dict:
    """The resolved config: shapes from the state dict, head width / QuickGELU from ``given``."""
    given = dict(given or {})
    if "model_cfg" in given:  # open_clip_config.json of a hub checkpoint
        given = dict(given["model_cfg"])
    vcfg, tcfg = dict(given.get("vision_cfg") or {}), dict(given.get("text_cfg") or {})
    for part, cfg in (("vision_cfg", vcfg), ("text_cfg", tcfg)):
        for key, default in _UNSUPPORTED[part].items():
            if cfg.get(key, default) != default:
                raise QrateError(f"{source}: the CLIP model uses {part}.{key}={cfg[key]!r}, which qrate's loader "
                                 "does not implement",
                                 hint="use a ViT CLIP with the standard text tower (ViT-B-32 ...)")
    if isinstance(vcfg.get("layers"), (list, tuple)):
        raise QrateError(f"{source}: ResNet CLIP image towers are not supported", hint="use a ViT CLIP model")
    try:
        conv = state["visual.conv1.weight"]
        width, patch = int(conv.shape[0]), int(conv.shape[-1])
        grid = int(round(math.sqrt(state["visual.positional_embedding"].shape[0] - 1)))
        tw = int(state["ln_final.weight"].shape[0])
        head_width = int(vcfg.get("head_width", 64))
        cfg = {
            "embed_dim": int(state["visual.proj"].shape[1]),
            "quick_gelu": bool(given.get("quick_gelu", False)),
            "logit_bias": "logit_bias" in state,
            "vision": {
                "width": width, "patch_size": patch, "image_size": grid * patch,
                "layers": _layers(state, "visual.transformer.resblocks."),
                "heads": max(1, width // head_width),
                "mlp": int(state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
                "layer_scale": "visual.transformer.resblocks.0.ls_1.gamma" in state,
            },
            "text": {
                "width": tw, "context_length": int(state["positional_embedding"].shape[0]),
                "vocab_size": int(state["token_embedding.weight"].shape[0]),
                "layers": _layers(state, "transformer.resblocks."),
                "heads": int(tcfg.get("heads", max(1, tw // 64))),
                "mlp": int(state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
                "layer_scale": "transformer.resblocks.0.ls_1.gamma" in state,
            },
        }
    except (KeyError, IndexError, AttributeError, TypeError) as e:
        raise QrateError(f"{source} is not an open_clip ViT CLIP state dict (no {e})", hint=WEIGHTS_HINT) from None
    for part in ("vision", "text"):
        if cfg[part]["width"] % cfg[part]["heads"]:
            raise QrateError(f"{source}: {cfg[part]['heads']} attention heads do not divide width {cfg[part]['width']}",
                             hint="give the right model name or config")
    return cfg


# ---------------------------------------------------------------------------------------------
# the tokenizer (CLIP's byte-level BPE)


@lru_cache(maxsize=1)
def _byte_unicode() -> dict[int, str]:
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class Tokenizer:
    """CLIP's tokenizer: lower-cased, whitespace-cleaned text, BPE, ``<start_of_text>`` ...
    ``<end_of_text>``, zero-padded (or cut) to the context length."""

    _pat = re.compile(r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+",
                      re.IGNORECASE)

    def __init__(self, vocab_path: str) -> None:
        from qrate.readers.safeio import read_regular

        raw = gzip.decompress(read_regular(vocab_path, max_bytes=8 << 20)).decode("utf-8")
        merges = [tuple(m.split()) for m in raw.split("\n")[1: 49152 - 256 - 2 + 1]]
        vocab = list(_byte_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
        vocab += ["<start_of_text>", "<end_of_text>"]
        self.encoder = {t: i for i, t in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot, self.eot = self.encoder["<start_of_text>"], self.encoder["<end_of_text>"]
        self._cache: dict[str, str] = {}

    def _bpe(self, token: str) -> list[str]:
        if token in self._cache:
            return self._cache[token].split(" ")
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        self._cache[token] = " ".join(word)
        return list(word)

    def encode(self, text: str) -> list[int]:
        text = " ".join(html.unescape(html.unescape(text)).split()).strip().lower()
        bu = _byte_unicode()
        ids: list[int] = []
        for tok in self._pat.findall(text):
            ids += [self.encoder[b] for b in self._bpe("".join(bu[c] for c in tok.encode("utf-8")))]
        return ids

    def __call__(self, texts: list[str], context_length: int) -> np.ndarray:
        out = np.zeros((len(texts), context_length), dtype=np.int64)
        for i, t in enumerate(texts):
            ids = [self.sot, *self.encode(t), self.eot]
            if len(ids) > context_length:
                ids = ids[:context_length]
                ids[-1] = self.eot
            out[i, : len(ids)] = ids
        return out


def find_vocab(weights_path: str | None = None) -> str:
    """The BPE vocabulary: beside the weights, else in the installed open_clip_torch package."""
    places = [os.path.join(os.path.dirname(os.path.abspath(weights_path)), VOCAB_FILE)] if weights_path else []
    base = _open_clip_dir()
    if base:
        places.append(os.path.join(base, VOCAB_FILE))
    for p in places:
        if os.path.isfile(p):
            return p
    raise QrateError(f"CLIP's tokenizer vocabulary {VOCAB_FILE} was not found", hint=VOCAB_HINT)


# ---------------------------------------------------------------------------------------------
# loading and using a model


def _read_state(path: str) -> dict:
    torch = _torch()
    from qrate.readers.safeio import UnsafeFileError, open_regular_file

    try:
        with open_regular_file(path) as fh:
            if path.lower().endswith(".safetensors"):
                try:
                    from safetensors.torch import load as st_load
                except ImportError:
                    raise QrateError(f"{path} is a .safetensors file and the safetensors package is not installed",
                                     hint="pip install safetensors, or give a .pt/.bin state dict") from None
                state = st_load(fh.read())
            else:
                state = torch.load(fh, weights_only=True, map_location="cpu")
    except QrateError:
        raise
    except FileNotFoundError:
        raise QrateError(f"the CLIP weights {path} do not exist", hint=WEIGHTS_HINT) from None
    except UnsafeFileError as e:
        raise QrateError(f"the CLIP weights {path} are not a regular file ({e})", hint=WEIGHTS_HINT) from None
    except OSError as e:
        raise QrateError(f"cannot read the CLIP weights {path}: {e.strerror or e}", hint=WEIGHTS_HINT) from None
    except Exception as e:  # not a (weights-only) torch file: a TorchScript archive, a pickle with code, junk
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise QrateError(f"the CLIP weights {path} are not a state dict that loads safely ({first})",
                         hint=WEIGHTS_HINT + "; save an OpenAI TorchScript .pt as a state dict first") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise QrateError(f"the CLIP weights {path} are not a state dict", hint=WEIGHTS_HINT)
    if all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


class ClipModel:
    """A loaded CLIP: :meth:`embedding`, :meth:`zero_shot`, :meth:`subjects`."""

    def __init__(self, net, tokenizer: Tokenizer, cfg: dict, path: str, model_name: str) -> None:
        self.net, self.tokenizer, self.cfg, self.path, self.model_name = net, tokenizer, cfg, path, model_name
        self._text_cache: dict[str, np.ndarray] = {}

    @property
    def image_size(self) -> int:
        return self.cfg["vision"]["image_size"]

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """open_clip's evaluation transform: short side to the model's size (bicubic), centre
        crop, OpenAI's mean/std. HxWx3 uint8 -> 1x3xSxS float32."""
        from PIL import Image

        a = np.asarray(rgb)
        if a.ndim == 2:
            a = np.stack([a] * 3, axis=-1)
        if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
            raise ValueError(f"expected an HxWx3 image, got shape {a.shape}")
        a = np.ascontiguousarray(a[:, :, :3], dtype=np.uint8)
        h, w = a.shape[:2]
        s = min(h, w)
        box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
        size = self.image_size
        img = Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
        x = (np.asarray(img, dtype=np.float32) / 255.0 - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def image_features(self, rgb: np.ndarray) -> np.ndarray:
        torch = _torch()
        with torch.inference_mode():
            return self.net.encode_image(torch.from_numpy(self.preprocess(rgb)))[0].double().numpy()

    def text_features(self, texts: list[str]) -> np.ndarray:
        torch = _torch()
        todo = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if todo:
            tokens = torch.from_numpy(self.tokenizer(todo, self.net.context_length))
            with torch.inference_mode():
                feats = self.net.encode_text(tokens).double().numpy()
            self._text_cache.update(zip(todo, feats))
        return np.stack([self._text_cache[t] for t in texts])

    def embedding(self, rgb: np.ndarray) -> list[float]:
        """The image embedding: L2-normalised, rounded to 4 digits."""
        v = self.image_features(rgb)
        return [round(float(x), DIGITS) + 0.0 for x in v / (np.linalg.norm(v) or 1.0)]

    def zero_shot(self, rgb: np.ndarray, prompts: dict[str, str] | list[str]) -> dict[str, float]:
        """Softmax over the prompts of the model's scaled cosine similarities: {key: probability}
        (keys: the dict's, or the prompts themselves), rounded to 4 digits."""
        items = list(prompts.items()) if isinstance(prompts, dict) else [(p, p) for p in prompts]
        if not items:
            return {}
        img = self.image_features(rgb)
        txt = self.text_features([p for _, p in items])
        scale = float(self.net.logit_scale.detach().exp().clamp(max=100))
        logits = scale * (txt @ img)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return {k: round(float(v), DIGITS) + 0.0 for (k, _), v in zip(items, p)}

    def subjects(self, rgb: np.ndarray) -> dict[str, float]:
        """Zero-shot scores of :data:`SUBJECT_PROMPTS` (they add up to 1)."""
        return self.zero_shot(rgb, SUBJECT_PROMPTS)


_lock = threading.Lock()
_models: dict[tuple, ClipModel] = {}


def load_clip(weights_path: str, model_name: str = "ViT-B-32", *, config: dict | str | None = None,
              vocab_path: str | None = None) -> ClipModel:
    """Load an open_clip checkpoint (cached per process per path/name/config).

    ``model_name``: the open_clip name the weights belong to (``ViT-B-32``, ``ViT-L-14``,
    ``ViT-B-32-quickgelu`` for OpenAI's weights ...); ``config``: an open_clip model config (a dict
    or a JSON file) that overrides the name, e.g. for a model of your own. Every failure is one
    :class:`QrateError` line with a hint."""
    if not weights_path:
        raise QrateError("no CLIP weights were given", hint=WEIGHTS_HINT)
    path = os.path.expanduser(str(weights_path))
    cfg_key = json.dumps(config, sort_keys=True) if isinstance(config, dict) else config
    key = (os.path.abspath(path), model_name, cfg_key, vocab_path)
    with _lock:
        if key in _models:
            return _models[key]
        torch = _torch()
        torch.set_num_threads(THREADS)
        if not os.path.exists(path):
            raise QrateError(f"the CLIP weights {path} do not exist", hint=WEIGHTS_HINT)
        if isinstance(config, str):
            from qrate.readers.safeio import read_regular

            try:
                config = json.loads(read_regular(config, max_bytes=1 << 20).decode("utf-8"))
            except (OSError, ValueError) as e:
                raise QrateError(f"cannot read the CLIP config {config}: {e}",
                                 hint="give open_clip's JSON config") from None
        given = config if config is not None else named_config(model_name)
        if not given and config is None:
            raise QrateError(f"unknown CLIP model name {model_name!r}",
                             hint="use an open_clip name (" + ", ".join(KNOWN_MODELS) + ") or give its config")
        state = _read_state(path)
        cfg = config_from_state(state, given, path)
        net = build_model(cfg)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            detail = " ".join(lines[1:2])[:200]
            raise QrateError(f"{path} does not fit the CLIP model {model_name} ({detail})",
                             hint="check the model name (open_clip's) or give its config") from None
        net.eval()
        tok = Tokenizer(vocab_path or find_vocab(path))
        if cfg["text"]["vocab_size"] < len(tok.encoder):
            raise QrateError(f"{path}: its text vocabulary ({cfg['text']['vocab_size']}) is smaller than CLIP's "
                             f"tokenizer's ({len(tok.encoder)})", hint="the weights are not a CLIP text tower")
        model = ClipModel(net, tok, cfg, path, model_name)
        _models[key] = model
        return model
