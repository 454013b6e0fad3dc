"""Intent slots: what a sentence asks for, as verbatim phrases (docs/plan-language.md).

A front end (the rule parser, or later an LLM) fills these from the user's text; the deterministic
compiler (``qrate.frontend.compiler``) turns them into a :class:`~qrate.plan.models.Plan`. Slots
hold the user's own words -- never computed values -- so every one can be checked against the text.
"""

from __future__ import annotations

from pydantic import Field

from qrate.plan.models import Strict

Phrase = str


class IntentSlots(Strict):
    count: Phrase | None = Field(None, max_length=60, description='how many: "50", "a dozen", "fifteen"')
    subject: list[Phrase] = Field(default_factory=list, max_length=8, description='"portraits", "group shots"')
    time: list[Phrase] = Field(default_factory=list, max_length=4, description='"last weekend", "in October 2025"')
    camera: list[Phrase] = Field(default_factory=list, max_length=4, description='"Z9", "Canon"')
    lens: list[Phrase] = Field(default_factory=list, max_length=4, description='"85mm", "the 70-200"')
    iso: Phrase | None = Field(None, max_length=60, description='"ISO 800 or below"')
    quality: list[Phrase] = Field(default_factory=list, max_length=8, description='"sharp", "sharpest", "in focus"')
    orientation: Phrase | None = Field(None, max_length=40, description='"vertical", "horizontal"')
    per_burst: Phrase | None = Field(None, max_length=40, description='"one per burst"')
    duplicates: Phrase | None = Field(None, max_length=40, description='"no duplicates"')
    exposure: list[Phrase] = Field(default_factory=list, max_length=8, description='"well exposed", "no blown highlights"')
    blinks: Phrase | None = Field(None, max_length=40, description='"no blinks", "eyes open"')
    refused: list[Phrase] = Field(default_factory=list, max_length=16, description="instructions qrate will not follow")
    unknown: list[Phrase] = Field(default_factory=list, max_length=64, description="words not understood")
