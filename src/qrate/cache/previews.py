"""Normalized previews (JPEG, long edge 1024), stored once under their content hash."""

from __future__ import annotations

import os
import tempfile


class PreviewStore:
    def __init__(self, root: str) -> None:
        self.root = root

    def path_for(self, key: str) -> str:
        return os.path.join(self.root, key[:2], f"{key}.jpg")

    def has(self, key: str) -> bool:
        return os.path.exists(self.path_for(key))

    def put(self, key: str, data: bytes) -> str:
        """Write atomically (temp file + os.replace); an existing entry is left alone."""
        path = self.path_for(key)
        if os.path.exists(path):
            return path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return path

    def get(self, key: str) -> bytes | None:
        try:
            with open(self.path_for(key), "rb") as f:
                return f.read()
        except OSError:
            return None
