"""Semantic versions of an experiment: ``v1.2.3`` folders and how allocations bump them."""

from __future__ import annotations

import re
from functools import total_ordering
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from scythe.errors import VersionError

__all__ = ["SemVer", "VersionBump", "VersionError", "resolve_version"]

VersionBump = Literal["bumpmajor", "bumpminor", "bumppatch", "keep"]
_PATTERN = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


@total_ordering
class SemVer(BaseModel):
    """A ``vMAJOR.MINOR.PATCH`` version.

    >>> SemVer.parse("v1.2.3").bump("bumpminor")
    SemVer('v1.3.0')
    >>> sorted([SemVer.parse("v1.10.0"), SemVer.parse("v1.9.2")])[-1]
    SemVer('v1.10.0')
    """

    model_config = ConfigDict(frozen=True)

    major: int = Field(1, ge=0)
    minor: int = Field(0, ge=0)
    patch: int = Field(0, ge=0)

    @classmethod
    def parse(cls, text: str) -> SemVer:
        match = _PATTERN.match(text.strip())
        if not match:
            raise VersionError(
                f"version {text!r} is not of the form vMAJOR.MINOR.PATCH (e.g. v1.2.3)"
            )
        major, minor, patch = (int(g) for g in match.groups())
        return cls(major=major, minor=minor, patch=patch)

    @classmethod
    def is_version(cls, text: str) -> bool:
        return bool(_PATTERN.match(text))

    @classmethod
    def FromString(cls, version: str) -> SemVer:
        """scythe-engine 1.x's parser: ``v2`` is v2.0.0, ``v1.2`` v1.2.0, ``v1-2-3`` v1.2.3.

        >>> SemVer.FromString("v1.2"), SemVer.FromString("v1-2-3")
        (SemVer('v1.2.0'), SemVer('v1.2.3'))
        """
        text = version.strip()
        if not text.startswith("v"):
            raise VersionError(f"version {version!r} must start with 'v' (e.g. v1.2.3)")
        parts = text[1:].split("." if "." in text else "-")
        if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
            raise VersionError(f"version {version!r} is not of the form vMAJOR[.MINOR[.PATCH]]")
        numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
        return cls(major=numbers[0], minor=numbers[1], patch=numbers[2])

    def next_major_version(self) -> SemVer:
        return self.bump("bumpmajor")

    def next_minor_version(self) -> SemVer:
        return self.bump("bumpminor")

    def next_patch_version(self) -> SemVer:
        return self.bump("bumppatch")

    def bump(self, kind: VersionBump) -> SemVer:
        if kind == "bumpmajor":
            return SemVer(major=self.major + 1, minor=0, patch=0)
        if kind == "bumpminor":
            return SemVer(major=self.major, minor=self.minor + 1, patch=0)
        if kind == "bumppatch":
            return SemVer(major=self.major, minor=self.minor, patch=self.patch + 1)
        if kind == "keep":
            return self
        raise VersionError(
            f"unknown version bump {kind!r}: use bumpmajor, bumpminor, bumppatch or keep"
        )

    def _key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    def __repr__(self) -> str:
        return f"SemVer({str(self)!r})"


def resolve_version(existing: list[SemVer], version: VersionBump | SemVer | str) -> SemVer:
    """The version of a new allocation given the versions already stored.

    No versions yet: ``v1.0.0`` whatever the bump. ``keep`` reuses the latest.

    >>> resolve_version([], "bumpminor")
    SemVer('v1.0.0')
    >>> resolve_version([SemVer.parse("v1.0.0"), SemVer.parse("v1.2.0")], "bumppatch")
    SemVer('v1.2.1')
    """
    if isinstance(version, SemVer):
        return version
    if isinstance(version, str) and SemVer.is_version(version):
        return SemVer.parse(version)
    if version not in ("bumpmajor", "bumpminor", "bumppatch", "keep"):
        raise VersionError(
            f"version {version!r} is neither a bump (bumpmajor, bumpminor, bumppatch, keep) "
            "nor a vMAJOR.MINOR.PATCH version"
        )
    if not existing:
        return SemVer()
    return max(existing).bump(version)
