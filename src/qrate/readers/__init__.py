"""Bounded, pure-Python readers for the containers qrate meets: TIFF/EXIF, JPEG, ISO-BMFF (CR3),
RAF, CIFF (CRW) and MRW.

Every reader works on a :class:`~qrate.readers.binary.Source` (a file-like object plus its
size): it seeks and reads only the bytes it needs, checks every offset and length against the
file size, bounds every loop, and raises :class:`qrate.errors.ReadError` on bad input. No reader
allocates more than :data:`~qrate.readers.binary.MAX_READ` bytes at once.
"""
