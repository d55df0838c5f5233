"""Frames from a local directory in the SAS layout (a mirror, or what `cmcat mock frames` writes)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from clustermass.errors import ImageError
from clustermass.images.builder import FrameSource
from clustermass.images.frames import Frame, DbFieldIndex, decode_frame


class LocalFrames:
    """FrameReader over `root`, which plays the role of the SAS base URL (root/dr12/boss/photoObj/...)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def read(self, relpath: str) -> Frame:
        path = self.root / relpath
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(
                f"frame {path} is missing from the local mirror {self.root}; "
                "check the folder (it must hold the SAS layout dr12/boss/photoObj/frames/...) or use --source sas"
            ) from None
        except OSError as exc:
            raise ImageError(f"cannot read frame {path}: {exc}") from None
        return decode_frame(raw, str(path))


class LocalSource(FrameSource):
    """Cutouts from a local frame mirror, frames located through the `fields` table."""

    def __init__(self, root: Path, engine: Engine, concurrency: int = 2, method: str = "auto"):
        super().__init__("local", LocalFrames(root), DbFieldIndex(engine), concurrency, method)
