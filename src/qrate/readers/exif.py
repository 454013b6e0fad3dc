"""Camera metadata from parsed TIFF/EXIF IFDs."""

from __future__ import annotations

from dataclasses import dataclass, fields

from qrate.readers import tiff as T
from qrate.readers.tiff import Ifd, TiffReader


@dataclass(slots=True)
class Metadata:
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    lens: str | None = None
    iso: int | None = None
    exposure_time: float | None = None  # seconds
    f_number: float | None = None
    focal_length: float | None = None  # mm
    orientation: int | None = None  # EXIF 1..8
    datetime_original: str | None = None  # raw EXIF text "YYYY:MM:DD HH:MM:SS"
    subsec_original: str | None = None
    offset_original: str | None = None  # "+02:00"
    datetime_digitized: str | None = None
    subsec_digitized: str | None = None
    width: int | None = None  # full image size in pixels, where known
    height: int | None = None

    def merge_missing(self, other: "Metadata") -> None:
        """Fill this record's empty fields from ``other`` (first reader wins)."""
        for f in fields(self):
            if getattr(self, f.name) is None:
                setattr(self, f.name, getattr(other, f.name))

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def _clean_make(make: str | None) -> str | None:
    return make.strip() if make else None


def metadata_from_ifds(r: TiffReader, ifds: list[Ifd], md: Metadata | None = None, exif_only: bool = False) -> Metadata:
    """Read camera metadata from IFD0 (first IFD) and the EXIF IFD. ``exif_only`` treats the
    first IFD as the EXIF IFD (CR3's CMT2 box)."""
    md = md or Metadata()
    if not ifds:
        return md
    ifd0 = ifds[0]
    exif = ifd0 if exif_only else next((i for i in ifds if i.name == "EXIF"), None)
    if not exif_only:
        md.make = md.make or _clean_make(r.get_str(ifd0, T.T_MAKE))
        md.model = md.model or r.get_str(ifd0, T.T_MODEL) or r.get_str(ifd0, T.T_UNIQUEMODEL)
        md.serial = md.serial or r.get_str(ifd0, T.T_CAMERASERIAL)
        o = r.get_int(ifd0, T.T_ORIENTATION)
        if md.orientation is None and o is not None and 1 <= o <= 8:
            md.orientation = o
    if exif is not None:
        md.datetime_original = md.datetime_original or r.get_str(exif, T.T_DTO)
        md.subsec_original = md.subsec_original or r.get_str(exif, T.T_SUBSEC_ORIGINAL)
        md.offset_original = md.offset_original or r.get_str(exif, T.T_OFFSET_TIME_ORIGINAL)
        md.datetime_digitized = md.datetime_digitized or r.get_str(exif, T.T_DTD)
        md.subsec_digitized = md.subsec_digitized or r.get_str(exif, T.T_SUBSEC_DIGITIZED)
        md.serial = md.serial or r.get_str(exif, T.T_SERIAL)
        lens = r.get_str(exif, T.T_LENSMODEL)
        if lens and md.lens is None:
            md.lens = lens
        if md.iso is None:
            iso = r.get_int(exif, T.T_ISO)
            md.iso = iso if iso else None
        if md.exposure_time is None:
            et = r.get_float(exif, T.T_EXPOSURE)
            md.exposure_time = round(et, 6) if et and et > 0 else None
        if md.f_number is None:
            fn = r.get_float(exif, T.T_FNUMBER)
            md.f_number = round(fn, 2) if fn and fn > 0 else None
        if md.focal_length is None:
            fl = r.get_float(exif, T.T_FOCAL)
            md.focal_length = round(fl, 2) if fl and fl > 0 else None
        if md.width is None:
            w, h = r.get_int(exif, T.T_PIXELX), r.get_int(exif, T.T_PIXELY)
            if w and h and w > 16 and h > 16:
                md.width, md.height = w, h
    if md.width is None and not exif_only:
        # the largest IFD that declares a size is the main image (raw data or full JPEG)
        best = (0, 0)
        for ifd in ifds:
            if ifd.name == "EXIF":
                continue
            crop = r.get_ints(ifd, T.T_DEFAULTCROPSIZE)
            w, h = (crop[0], crop[1]) if len(crop) == 2 else (r.get_int(ifd, T.T_WIDTH), r.get_int(ifd, T.T_HEIGHT))
            if w and h and w * h > best[0] * best[1]:
                best = (w, h)
        if best[0] > 16:
            md.width, md.height = best
    return md
