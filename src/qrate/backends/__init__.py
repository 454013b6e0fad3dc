"""Back ends: what a cull leaves on disk (bucket folders, manifest, summary, lists, XMP sidecars).

Every file is written through :mod:`qrate.backends.atomic` (temp file + ``os.replace``)."""
