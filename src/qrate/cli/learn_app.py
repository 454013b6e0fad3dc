"""The ``qrate learn`` terminal UI (Textual): 2-4 frames of a burst side by side, as images, with
the key facts under each; the photographer's keys become pairs through
:class:`qrate.backends.taste_store.LearnSession` (docs/taste.md).

Keys: 1-4 keep that frame; = (or e) all equally good; s skip; u undo; z zoom to 1:1 on the face
or the sharpest area (again: back); q quit (everything answered is already stored).

Images: textual-image (Kitty graphics / Sixel where the terminal has them, half blocks elsewhere);
text shown comes from files (names, EXIF), so it is cleaned (cli/safe.py) and never read as markup.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static

from qrate.backends.taste_store import LearnSession, Query
from qrate.cli.safe import clean

ImageLoader = Callable[[str, bool], object]  # (path, zoomed) -> PIL image or None


def facts_text(k: int, f: dict) -> Text:
    """The caption under frame ``k`` (1-based): name, sharpness, exposure, clipping, eyes, qrate's view."""
    def num(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "?"

    lines = [f"[{k}] {clean(f.get('name', '?'))}" + ("  * qrate's pick" if f.get("pick") or f.get("rank") == 1 else ""),
             f"sharpness {num(f.get('sharpness'), '.0f')}  mean {num(f.get('mean'), '.0f')}",
             f"clipped {num((f.get('clip_high') or 0) * 100, '.1f')}%  noise {num(f.get('noise'), '.1f')}",
             f"eyes {clean(f.get('eyes') or '-')}  score {num(f.get('score'), '+.2f')}  rank {f.get('rank')}"]
    return Text("\n".join(lines))


class LearnApp(App):
    """One query at a time; every key goes to the session (the one code path for answers)."""

    CSS = """
    #status { height: 2; padding: 0 1; }
    #frames { height: 1fr; }
    .frame { width: 1fr; height: 1fr; border: round $panel; }
    .frame Static.caption { height: 4; }
    .frame .img { height: 1fr; }
    """
    BINDINGS = [
        Binding("1", "pick(0)", "keep 1"), Binding("2", "pick(1)", "keep 2"),
        Binding("3", "pick(2)", "keep 3"), Binding("4", "pick(3)", "keep 4"),
        Binding("equals_sign", "equal", "all equal"), Binding("e", "equal", "all equal", show=False),
        Binding("s", "skip", "skip"), Binding("u", "undo", "undo"), Binding("z", "zoom", "zoom 1:1"),
        Binding("q", "quit_learn", "quit"),
    ]

    def __init__(self, session: LearnSession, load_image: ImageLoader | None = None, image_cls=None) -> None:
        super().__init__()
        self.session = session
        self.load_image = load_image
        self.image_cls = image_cls
        self.zoomed = False
        self.shown: Query | None = None
        self._images: dict[tuple[str, bool], object] = {}

    def compose(self) -> ComposeResult:
        yield Static(Text(""), id="status")
        yield Horizontal(id="frames")
        yield Footer()

    async def on_mount(self) -> None:
        await self.refresh_query()

    def status_text(self) -> str:
        s = self.session
        q = s.current
        if q is None:
            return (f"done: {s.answered} answers this session, nothing left to ask. "
                    "q saves the model and quits; u takes the last answer back.")
        where = f"near-duplicates across bursts (cluster {q.cluster})" if q.cluster is not None else f"burst {q.burst}"
        return (f"{where}: which frame would you keep?  {s.answered} answered, {s.remaining} to go"
                + ("  [zoom 1:1]" if self.zoomed else ""))

    async def refresh_query(self) -> None:
        q = self.session.current
        self.shown = q
        self.query_one("#status", Static).update(Text(self.status_text()))
        frames = self.query_one("#frames", Horizontal)
        await frames.remove_children()
        if q is None:
            return
        boxes = []
        for k, (path, facts) in enumerate(zip(q.paths, q.facts), start=1):
            parts = []
            img = self._image(path)
            if img is not None and self.image_cls is not None:
                parts.append(self.image_cls(img, classes="img"))
            else:
                parts.append(Static(Text("(no preview)" if self.load_image is not None else ""), classes="img"))
            parts.append(Static(facts_text(k, facts), classes="caption"))
            boxes.append(Vertical(*parts, classes="frame", id=f"frame{k}"))
        await frames.mount(*boxes)

    def _image(self, path: str):
        if self.load_image is None:
            return None
        key = (path, self.zoomed)
        if key not in self._images:
            if len(self._images) > 16:  # the frames of the last few questions
                self._images.clear()
            self._images[key] = self.load_image(path, self.zoomed)
        return self._images[key]

    async def action_pick(self, k: int) -> None:
        if self.session.choose(k):
            self.zoomed = False
            await self.refresh_query()

    async def action_equal(self) -> None:
        if self.session.equal():
            self.zoomed = False
            await self.refresh_query()

    async def action_skip(self) -> None:
        if self.session.skip():
            self.zoomed = False
            await self.refresh_query()

    async def action_undo(self) -> None:
        if self.session.undo():
            self.zoomed = False
            await self.refresh_query()

    async def action_zoom(self) -> None:
        self.zoomed = not self.zoomed
        await self.refresh_query()

    def action_quit_learn(self) -> None:
        self.exit(self.session.answered)
