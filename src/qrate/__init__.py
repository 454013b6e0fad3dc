"""qrate: a photo-culling compiler.

The package is layered; imports point down only::

    cli  >  frontend, backends, demo, executor  >  passes  >  cache  >  ir  >  plan  >  errors

``readers`` (bounded, pure-Python TIFF / EXIF / ISO-BMFF / JPEG parsers) sit beside ``ir``:
they import nothing from qrate but ``errors``.
"""

__version__ = "0.1.0"
