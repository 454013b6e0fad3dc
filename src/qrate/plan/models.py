"""The plan: what a cull does, as strict, versioned, whitelisted data (docs/plan-language.md).

Every front end -- command-line flags, YAML presets, the rule-based parser, an LLM -- produces a
:class:`Plan`; nothing else is executed. Every model forbids unknown fields, every number has
bounds, and there is no operation that deletes, moves, renames or runs anything: the only writes a
plan can ask for are the outputs below, into a folder outside the photos.
``schemas/plan.schema.json`` is generated from these models (``qrate schema --write``).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qrate.readers import safeio

PLAN_VERSION = 1

# names shared with lower layers; tests check they equal the passes' own lists
SOFT_FLAG_NAMES = ("clipped_highlights", "clipped_shadows", "noisy", "underexposed", "overexposed", "motion_blur",
                   "softer_than_burst", "eyes_closed")
SUBJECTS = ("people", "portrait", "group", "landscape", "food", "animal", "architecture", "night", "sports", "macro",
            "document", "other")
BUCKET_NAMES = ("best", "good", "maybe", "trash")
MAX_COUNT = 1_000_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# -- source ---------------------------------------------------------------------------------------
def _safe_path(v: str | None, what: str) -> str | None:
    if v is None:
        return v
    if not v or "\x00" in v:
        raise ValueError(f"{what} must be a non-empty path")
    if ".." in v.replace("\\", "/").split("/"):
        raise ValueError(f"{what} may not contain '..' (path traversal)")
    return v


class Source(Strict):
    """Where the photos are. Empty ``paths``: given at run time (``--in``)."""

    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(default_factory=list, max_length=256)
    extensions: list[Annotated[str, Field(pattern=r"^\.?[A-Za-z0-9]{1,8}$")]] | None = Field(None, max_length=64)
    follow_symlinks: bool = Field(False, description="Follow symlinked folders (loop-safe) and symlinked files that "
                                  "lead outside the source folders; by default neither is read (docs/ingest.md).")

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        for p in v:
            _safe_path(p, "source path")
        return v


# -- filters (a discriminated union on "op") ------------------------------------------------------
class DateRange(Strict):
    """Capture time within [start, end): local wall-clock times, as the camera wrote them."""

    op: Literal["date_range"]
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    phrase: str | None = Field(None, max_length=200, description="the words it came from, for review")

    @model_validator(mode="after")
    def _order(self) -> "DateRange":
        if self.start is None and self.end is None:
            raise ValueError("date_range needs start or end")
        if self.start and self.end and self.start >= self.end:
            raise ValueError("date_range start must be before end")
        for t in (self.start, self.end):
            if t is not None and not 1900 <= t.year <= 2200:
                raise ValueError("date_range years must be within 1900..2200")
        return self


def _check_range(f):
    """A min/max filter needs one bound, and min <= max."""
    if f.min is None and f.max is None:
        raise ValueError(f"{f.op} needs min or max")
    if f.min is not None and f.max is not None and f.min > f.max:
        raise ValueError(f"{f.op} min must not exceed max")
    return f


class Camera(Strict):
    """Make and model contain this text (case, spaces and dashes ignored: "z9" matches "NIKON Z 9").
    With ``models`` (camera words resolved against an index), the photo's camera must be one of
    them exactly (so "NIKON D70" does not take in a "NIKON D700")."""

    op: Literal["camera"]
    contains: str = Field(min_length=1, max_length=64)
    models: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        None, max_length=16, description="the cameras (make and model) the words resolved to in the index")
    phrase: str | None = Field(None, max_length=200, description="the words it came from, for review")


class Lens(Strict):
    op: Literal["lens"]
    contains: str = Field(min_length=1, max_length=64)


class FocalLength(Strict):
    """Focal length in mm, inclusive bounds."""

    op: Literal["focal_length"]
    min: float | None = Field(None, ge=1, le=5000)
    max: float | None = Field(None, ge=1, le=5000)

    _order = model_validator(mode="after")(lambda self: _check_range(self))


class Iso(Strict):
    """ISO speed, inclusive bounds."""

    op: Literal["iso"]
    min: int | None = Field(None, ge=1, le=10_000_000)
    max: int | None = Field(None, ge=1, le=10_000_000)

    _order = model_validator(mode="after")(lambda self: _check_range(self))


class Orientation(Strict):
    """As displayed (EXIF orientation applied)."""

    op: Literal["orientation"]
    value: Literal["portrait", "landscape", "square"]


class Subject(Strict):
    """What the photo shows (any of ``values``): tags from the vision pass (faces, a scene
    classifier, EXIF; CLIP when weights are given). Needs the optional ``vision`` extra.
    ``people`` = portrait or group."""

    op: Literal["subject"]
    values: list[Literal[SUBJECTS]] = Field(min_length=1, max_length=len(SUBJECTS))  # type: ignore[valid-type]


class EyesOpen(Strict):
    """Nobody blinking: every main face (docs/vision.md) has both eyes open. A wink ("mixed")
    counts as closed; a face whose eyes cannot be judged (too small, turned away) makes the photo
    "can't tell", which does not pass either and is reported. A photo without faces passes (nobody
    blinks in a landscape); one the vision pass has no result for does not. Needs the ``vision`` extra."""

    op: Literal["eyes_open"]


class Faces(Strict):
    """How many faces the photo shows (detected faces of a useful size). Needs the ``vision`` extra."""

    op: Literal["faces"]
    min: int | None = Field(None, ge=0, le=1000)
    max: int | None = Field(None, ge=0, le=1000)

    @model_validator(mode="after")
    def _bounds(self) -> "Faces":
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min may not exceed max")
        return self


class MinSharpness(Strict):
    """Trash frames whose sharpness (docs/features.md) is lower."""

    op: Literal["min_sharpness"]
    value: float = Field(ge=0, le=1_000_000)


class MaxClip(Strict):
    """Trash frames whose clipped share (highlights or shadows) is higher."""

    op: Literal["max_clip"]
    value: float = Field(ge=0, le=1)


class ExcludeFlags(Strict):
    """Trash frames that raise any of these soft flags (hard flags always trash)."""

    op: Literal["exclude_flags"]
    flags: list[Literal[SOFT_FLAG_NAMES]] = Field(min_length=1, max_length=8)  # type: ignore[valid-type]


class MinRating(Strict):
    """Only photos whose existing sidecar rating (xmp:Rating) is at least this."""

    op: Literal["min_rating"]
    value: int = Field(ge=-1, le=5)


class ExcludeNearDuplicates(Strict):
    """Also find near-duplicates across bursts and keep one pick per cluster."""

    op: Literal["exclude_near_duplicates"]


FILTER_CLASSES = (DateRange, Camera, Lens, FocalLength, Iso, Orientation, Subject, EyesOpen, Faces, MinSharpness, MaxClip,
                  ExcludeFlags, MinRating, ExcludeNearDuplicates)
Filter = Annotated[Union[FILTER_CLASSES], Field(discriminator="op")]  # type: ignore[valid-type]

#: filter ops that choose which photos take part (the others judge them)
SCOPE_OPS = ("date_range", "camera", "lens", "focal_length", "iso", "orientation", "subject", "eyes_open",
             "faces", "min_rating")
#: filter ops that need an optional extra: op -> (feature, extra)
EXTRA_OPS = {"subject": ("subject detection", "vision"), "eyes_open": ("blink detection", "vision"),
             "faces": ("face detection", "vision")}


# -- grouping, scoring, selection, outputs ---------------------------------------------------------
class Grouping(Strict):
    burst_seconds: float = Field(2.0, ge=0, le=3600)
    dedupe_hamming: int = Field(8, ge=0, le=32)


class Weights(Strict):
    """Score weights (docs/scoring.md); null keeps the default."""

    sharpness: float | None = Field(None, ge=0, le=100)
    exposure_burst: float | None = Field(None, ge=0, le=100)
    exposure_mid: float | None = Field(None, ge=0, le=100)
    exposure_extreme: float | None = Field(None, ge=0, le=100)
    clipping: float | None = Field(None, ge=0, le=100)
    noise: float | None = Field(None, ge=0, le=100)
    resolution: float | None = Field(None, ge=0, le=100)


class Scoring(Strict):
    weights: Weights = Field(default_factory=Weights)
    taste: float | None = Field(None, ge=0, le=1, description="rank bursts by w * learned taste + (1 - w) * "
                                "technical score, w given here (docs/taste.md; `qrate learn` trains the model); "
                                "null: technical only")


class Selection(Strict):
    top: int | None = Field(None, ge=0, le=MAX_COUNT, description="keep only the N best picks of the shoot "
                            "(of each group when ``per`` is set)")
    top_percent: float | None = Field(None, gt=0, le=100, description="keep only this share of the picks, best "
                                      "first (rounded up; of each group when ``per`` is set); not with ``top``")
    per: Literal["day", "camera", "folder", "lens"] | None = Field(
        None, description="apply top / top_percent within each capture day, camera, folder or lens, not the shoot")
    per_burst: int = Field(1, ge=1, le=100, description="picks per burst")
    min_score: float | None = Field(None, ge=-100, le=100, description="picks whose quality is lower are not picked")

    @model_validator(mode="after")
    def _one_count(self) -> "Selection":
        if self.top is not None and self.top_percent is not None:
            raise ValueError("give top or top_percent, not both")
        if self.per is not None and self.top is None and self.top_percent is None:
            raise ValueError("per needs top or top_percent (how many of each group)")
        return self


class Mark(Strict):
    """What a bucket becomes in a sidecar (docs/export.md)."""

    rating: int = Field(ge=-1, le=5)
    color: Literal["Red", "Yellow", "Green", "Blue", "Purple"] | None = None
    pick: Literal["pick", "reject"] | None = None


class XmpOutput(Strict):
    enabled: bool = True
    naming: Literal["basename", "full", "both"] = Field(
        "basename", description="basename: NAME.xmp (Lightroom, Capture One); full: NAME.EXT.xmp (darktable, "
        "digiKam); both: both names, kept identical. Existing sidecars of either name are always updated too.")
    in_place: bool = False
    overwrite_marks: bool = Field(False, description="replace ratings, colour labels and pick/reject flags a "
                                  "person set (default: they are kept; qrate adds its verdict where there is none)")
    marks: dict[Literal[BUCKET_NAMES], Mark] = Field(default_factory=dict,  # type: ignore[valid-type]
                                                     description="overrides of the default bucket marks")
    stars: Literal["bucket", "graded"] = Field(
        "bucket", description="bucket: every photo of a bucket gets that bucket's mark (best = 5 stars); graded: "
        "the marks spread over the shoot's quality (picks 5/4/3 stars by rank, unpicked 2/1, rejects; "
        "docs/culling.md, 'Stars') and a bracket travels whole with its pick; a bucket whose mark `marks` "
        "overrides keeps the override")


class Outputs(Strict):
    """What a run writes. Nothing is written without ``out_dir``, ``list`` or ``xmp.in_place``."""

    out_dir: str | None = Field(None, max_length=4096)
    export: Literal["auto", "hardlink", "symlink", "copy"] = Field(
        "auto", description="auto: reflink, else a copy -- hardlinks only for proprietary RAWs, which no editor "
        "writes into (docs/export.md)")
    buckets: list[Literal[BUCKET_NAMES]] = Field(default_factory=lambda: list(BUCKET_NAMES),  # type: ignore[valid-type]
                                                  min_length=1, max_length=4)
    xmp: XmpOutput = Field(default_factory=XmpOutput)
    manifest: bool = True
    list_file: str | None = Field(None, max_length=4096, description="export.txt: the picked paths")

    @field_validator("out_dir", "list_file")
    @classmethod
    def _no_traversal(cls, v: str | None, info) -> str | None:
        return _safe_path(v, info.field_name)

    @field_validator("buckets")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))


class Plan(Strict):
    """A complete, reviewable description of one cull."""

    qrate_plan: Literal[1] = PLAN_VERSION
    description: str | None = Field(None, max_length=500)
    source: Source = Field(default_factory=Source)
    filters: list[Filter] = Field(default_factory=list, max_length=64)
    grouping: Grouping = Field(default_factory=Grouping)
    scoring: Scoring = Field(default_factory=Scoring)
    selection: Selection = Field(default_factory=Selection)
    outputs: Outputs = Field(default_factory=Outputs)

    @model_validator(mode="after")
    def _outputs_outside_sources(self) -> "Plan":
        for out in (self.outputs.out_dir, self.outputs.list_file):
            if out is None:
                continue
            for src in self.source.paths:
                if _inside(out, src):
                    raise ValueError(f"outputs may not point inside the source folder {src!r}")
        return self

    def filters_of(self, op: str) -> list:
        return [f for f in self.filters if f.op == op]

    def canonical_json(self) -> str:
        return self.model_dump_json(exclude_none=False)


def _inside(path: str, folder: str) -> bool:
    # by real paths: a symlink to the source folder (``shootlink/IMG_1.xmp``) is inside it too
    return safeio.inside(os.path.expanduser(path), os.path.expanduser(folder))


#: op name -> model
FILTER_MODELS = {m.model_fields["op"].annotation.__args__[0]: m for m in FILTER_CLASSES}
