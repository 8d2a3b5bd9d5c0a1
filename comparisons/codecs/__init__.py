"""Codecs by name: the external baselines and the S2VC adapter, all behind the same `Codec` interface."""
from __future__ import annotations

from comparisons.codecs.base import Codec, CodecError, EncodeResult
from comparisons.codecs.s2vc import S2VCCodec
from comparisons.codecs.svtav1 import SvtAv1
from comparisons.codecs.vvenc import VVenC
from comparisons.codecs.x264 import X264
from comparisons.codecs.x265 import X265

CODECS: dict[str, type[Codec]] = {c.name: c for c in (S2VCCodec, X265, VVenC, SvtAv1, X264)}


def get_codec(name: str, **options) -> Codec:
    """A codec instance by registry name (``x265``, ``vvenc``, ``svtav1``, ``x264``, ``s2vc``)."""
    if name not in CODECS:
        raise CodecError(f"unknown codec {name!r}; known: {', '.join(CODECS)}")
    return CODECS[name](**options)


def codec_availability() -> dict[str, str | None]:
    """Each registered codec -> None when it can run here, else the reason it cannot."""
    return {name: cls.availability() for name, cls in CODECS.items()}


__all__ = ["CODECS", "Codec", "CodecError", "EncodeResult", "codec_availability", "get_codec"]
