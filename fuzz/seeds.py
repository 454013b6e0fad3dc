"""Write the seed corpus for the atheris harness: small valid files of every container qrate
reads (generated, plus the real samples' headers when ../shared/samples is present).

    python -m fuzz.seeds fuzz/corpus
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
REAL = ["exiv2/Canon-R6-pruned.CR3", "exiftool/FujiFilm.raf", "exiftool/CanonRaw.cr2", "exiftool/Nikon.nef",
        "exiftool/Panasonic.rw2", "photoprism/canon_eos_6d.dng", "exiftool/DNG.dng"]
HEAD = 256 << 10  # the first 256 KiB of a real file: headers, IFDs, often a preview


def seeds() -> dict[str, bytes]:
    import tempfile

    from qrate.demo.synth import render_scene, write_dng, write_jpeg

    out = {}
    scene = render_scene(1, 160, 107)
    exif = {"make": "Canon", "model": "EOS", "datetime": "2026:11:14 10:00:00", "orientation": 6, "iso": 100}
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "s")
        write_dng(p, scene, exif, previews=(160,), thumb=64, raw_size=(32, 24))
        out["synthetic.dng"] = Path(p).read_bytes()
        write_jpeg(p, scene, exif)
        out["synthetic.jpg"] = Path(p).read_bytes()
    for rel in REAL:
        f = SAMPLES / rel
        if f.is_file():
            with open(f, "rb") as fh:
                out[os.path.basename(rel)] = fh.read(HEAD)
    return out


def main() -> None:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus")
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (dest / name).write_bytes(data)
    print(f"{len(list(dest.iterdir()))} seeds in {dest}")


if __name__ == "__main__":
    main()
