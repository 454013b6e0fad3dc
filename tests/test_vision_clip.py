"""The CLIP loader (extras/vision/clip.py) with a tiny, randomly initialised ViT CLIP that the test
itself makes and saves (no registry package ships CLIP weights; nothing is downloaded).

The tokenizer test needs CLIP's BPE vocabulary, which open_clip_torch ships
(``pip install --no-deps open_clip_torch``); it is skipped, with that reason, when absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the 'vision' extra (torch) is not installed")

from qrate.errors import QrateError  # noqa: E402
from qrate.extras.vision import clip  # noqa: E402

TINY = {  # open_clip's model-config format
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def _vocab() -> str:
    try:
        return clip.find_vocab()
    except QrateError:
        pytest.skip(f"CLIP's BPE vocabulary is absent ({clip.VOCAB_HINT})")


def _rgb(seed: int, h: int = 90, w: int = 120) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.fixture()
def tiny(tmp_path):
    """(weights path, config path) of a tiny random CLIP, saved as a plain state dict."""
    _vocab()
    cfg = clip.config_from_state(_random_state(), TINY, "tiny")
    net = clip.build_model(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        net.logit_scale.fill_(float(np.log(1 / 0.07)))
    weights, config = tmp_path / "tiny.pt", tmp_path / "tiny.json"
    torch.save(net.state_dict(), weights)
    config.write_text(json.dumps(TINY))
    clip._models.clear()
    yield str(weights), str(config)
    clip._models.clear()


def _random_state() -> dict:
    """A state dict with the shapes of TINY, enough for config_from_state."""
    v, t, e = TINY["vision_cfg"], TINY["text_cfg"], TINY["embed_dim"]
    grid = v["image_size"] // v["patch_size"]
    st = {
        "visual.conv1.weight": torch.zeros(v["width"], 3, v["patch_size"], v["patch_size"]),
        "visual.positional_embedding": torch.zeros(grid * grid + 1, v["width"]),
        "visual.proj": torch.zeros(v["width"], e),
        "ln_final.weight": torch.zeros(t["width"]),
        "positional_embedding": torch.zeros(t["context_length"], t["width"]),
        "token_embedding.weight": torch.zeros(t["vocab_size"], t["width"]),
    }
    for i in range(v["layers"]):
        st[f"visual.transformer.resblocks.{i}.mlp.c_fc.weight"] = torch.zeros(4 * v["width"], v["width"])
    for i in range(t["layers"]):
        st[f"transformer.resblocks.{i}.mlp.c_fc.weight"] = torch.zeros(4 * t["width"], t["width"])
    return st


def test_state_dict_has_open_clips_key_names(tiny):
    # the names of open_clip's CLIP(ViT) module tree (checked once against open_clip 3.3.0 itself:
    # its state dict loads strictly and gives the same image/text features, bit for bit)
    state = torch.load(tiny[0], weights_only=True)
    for key in ("visual.conv1.weight", "visual.class_embedding", "visual.ln_pre.weight", "visual.proj",
                "visual.transformer.resblocks.1.attn.in_proj_weight", "visual.transformer.resblocks.1.mlp.c_proj.bias",
                "visual.ln_post.bias", "token_embedding.weight", "transformer.resblocks.0.ln_1.weight",
                "ln_final.weight", "text_projection", "logit_scale"):
        assert key in state, key
    assert "attn_mask" not in state  # a buffer open_clip does not save either


def test_tokenizer_gives_clips_tokens():
    tok = clip.Tokenizer(_vocab())
    ids = tok(["a photo of a cat"], 77)[0]
    # CLIP's well-known ids: <start_of_text> a photo of a cat <end_of_text>, zero padded
    assert ids[:7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert not ids[7:].any()
    assert tok(["A  Photo OF a CAT"], 77).tolist() == tok(["a photo of a cat"], 77).tolist()
    long = tok(["word " * 100], 16)[0]
    assert long[0] == 49406 and long[-1] == 49407 and len(long) == 16


def test_tiny_model_round_trip(tiny):
    weights, config = tiny
    model = clip.load_clip(weights, "tiny", config=config)
    assert model.image_size == 64 and model.cfg["vision"]["heads"] == 2
    img, other = _rgb(1), _rgb(2, 200, 150)

    emb = model.embedding(img)
    assert len(emb) == TINY["embed_dim"]
    assert abs(float(np.linalg.norm(emb)) - 1.0) < 1e-3  # L2-normalised (then rounded to 4 digits)
    assert all(round(v, 4) == v for v in emb)
    assert emb == model.embedding(img)  # deterministic
    assert emb != model.embedding(other)

    prompts = {"food": "a photo of food", "cat": "a photo of a cat", "night": "a photo taken at night"}
    scores = model.zero_shot(img, prompts)
    assert list(scores) == list(prompts)
    assert abs(sum(scores.values()) - 1.0) < 1e-3 and all(0 <= v <= 1 for v in scores.values())
    assert model.zero_shot(img, list(prompts.values())).keys() == set(prompts.values())
    subj = model.subjects(other)
    assert set(subj) == set(clip.SUBJECT_PROMPTS) and abs(sum(subj.values()) - 1.0) < 1e-3

    # a fresh load of the same file gives the same numbers (nothing random at inference)
    clip._models.clear()
    again = clip.load_clip(weights, "tiny", config=json.loads(open(config).read()))
    assert again is not model
    assert again.embedding(img) == emb and again.zero_shot(img, prompts) == scores


def test_wrapped_and_prefixed_state_dicts_load(tiny, tmp_path):
    weights, config = tiny
    state = torch.load(weights, weights_only=True)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}}, wrapped)
    a = clip.load_clip(weights, "tiny", config=config).embedding(_rgb(3))
    b = clip.load_clip(str(wrapped), "tiny", config=config).embedding(_rgb(3))
    assert a == b


def _one_line(err: QrateError) -> str:
    text = str(err)
    assert "\n" not in text and err.hint
    return text


def test_missing_weights_is_one_line(tmp_path):
    with pytest.raises(QrateError) as e:
        clip.load_clip(str(tmp_path / "nope.pt"))
    assert "do not exist" in _one_line(e.value) and "--clip-weights" in e.value.hint
    with pytest.raises(QrateError) as e:
        clip.load_clip("")
    _one_line(e.value)


def test_bad_files_are_one_line(tiny, tmp_path):
    weights, config = tiny
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint\n" * 10)
    with pytest.raises(QrateError) as e:
        clip.load_clip(str(junk), "tiny", config=config)
    assert "not a state dict" in _one_line(e.value)

    state = torch.load(weights, weights_only=True)
    del state["visual.ln_post.weight"]
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    with pytest.raises(QrateError) as e:
        clip.load_clip(str(broken), "tiny", config=config)
    assert "does not fit" in _one_line(e.value)

    with pytest.raises(QrateError) as e:  # 3 heads cannot split a width of 64
        clip.load_clip(weights, "tiny", config={**TINY, "text_cfg": {**TINY["text_cfg"], "heads": 3}})
    _one_line(e.value)
    with pytest.raises(QrateError) as e:  # features the loader does not implement are refused, not misread
        clip.load_clip(weights, "tiny", config={**TINY, "vision_cfg": {**TINY["vision_cfg"], "attentional_pool": True}})
    assert "does not implement" in _one_line(e.value)
    with pytest.raises(QrateError) as e:
        clip.load_clip(weights, "no-such-model")
    assert "unknown CLIP model" in _one_line(e.value)


def test_named_configs():
    assert clip.named_config("ViT-H-14")["vision_cfg"]["head_width"] == 80
    assert clip.named_config("ViT-B-32-quickgelu")["quick_gelu"] is True
    assert not clip.named_config("ViT-B-32").get("quick_gelu", False)
    assert clip.named_config("../../etc/passwd") == {}


def test_clip_joins_the_vision_pass_and_a_result_is_keyed_by_the_weights(tiny, tmp_path):
    """With weights, the vision analyzer adds CLIP's zero-shot subjects and embedding; the stored
    result names the weights' content hash, so other weights are not taken for the same result."""
    pytest.importorskip("skimage", reason="scikit-image (the vision-test extra) ships the test photo")
    from skimage import data

    from qrate.extras import vision as vision_extra

    weights, config = tiny
    va = vision_extra.analyzer(weights, "tiny", config)
    assert va.variant.startswith("clip:") and va.variant == vision_extra.weights_id(weights, "tiny", config)
    # the model name and config decide the output too: another name is another variant
    assert vision_extra.weights_id(weights, "ViT-B-32", config) != va.variant
    out = va(data.astronaut(), {})
    assert out["variant"] == va.variant and out["clip"]["weights"] == va.variant
    assert set(out["clip"]["subjects"]) == set(clip.SUBJECT_PROMPTS) and len(out["clip"]["embedding"]) == 32
    assert out["subjects"]["top"] in out["subjects"]["tags"] and out["faces"]  # faces still decide people
    plain = vision_extra.analyzer()(data.astronaut(), {})
    for s in plain["subjects"]["tags"]:  # CLIP can only raise a scene subject's score, never lower one
        assert out["subjects"]["tags"][s] >= plain["subjects"]["tags"][s]
    other = tmp_path / "other.pt"
    state = torch.load(weights, weights_only=True)
    state["logit_scale"] = state["logit_scale"] + 1
    torch.save(state, other)
    assert vision_extra.weights_id(str(other), "tiny", config) != va.variant
