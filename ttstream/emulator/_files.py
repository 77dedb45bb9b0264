"""The images served for ``response_format: "url"``, kept in a bounded LRU in memory."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

__all__ = ["FileStore"]

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


class FileStore:
    """Image files by name, the least recently used dropped beyond ``max_files``.

    Names are random (``img_<32 hex>.<ext>``), so a URL cannot be guessed; like the
    real API's expiring URLs, an old one eventually stops working (here: 404).
    """

    def __init__(self, max_files: int = 256) -> None:
        if max_files < 1:
            raise ValueError(f"max_files must be at least 1, got {max_files!r}")
        self.max_files = max_files
        self._files: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, content: bytes, media_type: str) -> str:
        """Stores a file and returns its new name."""
        name = f"img_{secrets.token_hex(16)}.{_EXTENSIONS.get(media_type, 'bin')}"
        with self._lock:
            self._files[name] = (content, media_type)
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)
        return name

    def get(self, name: str) -> tuple[bytes, str] | None:
        """The file's content and media type, or ``None`` if unknown or evicted."""
        with self._lock:
            found = self._files.get(name)
            if found is not None:
                self._files.move_to_end(name)
            return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)
