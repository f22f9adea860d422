"""File references and fetching, under scythe-engine 1.x's import path.

>>> from pathlib import Path
>>> import tempfile
>>> source = Path(tempfile.mkdtemp()) / "a.txt"
>>> _ = source.write_text("hello")
>>> fetch_uri(source.as_uri(), Path(tempfile.mkdtemp()) / "copy.txt").read_text()
'hello'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AnyUrl

from scythe.base import FileReference, OptionalFileReference, S3Url
from scythe.leaf import download


def fetch_uri(uri: AnyUrl | str, local_path: Path, use_cache: bool = True, s3: Any = None) -> Path:
    """Copy the file at ``uri`` (``s3://``, ``http(s)://``, ``file://``) to ``local_path``.

    With ``use_cache`` an existing ``local_path`` is kept. ``s3`` is a boto3
    client to download ``s3://`` URIs with (default: the store's own).
    """
    text, target = str(uri), Path(local_path)
    if s3 is not None and text.startswith("s3://") and not (use_cache and target.exists()):
        bucket, _, key = text[len("s3://") :].partition("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
        return target
    return download(text, target, use_cache=use_cache)


__all__ = ["FileReference", "OptionalFileReference", "S3Url", "fetch_uri"]
