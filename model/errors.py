"""The project's exception types. Messages are one line and say what is wrong and where.

Catch `S2VCError` at the command line to turn any of them into a clean error message and a non-zero exit.
"""
from __future__ import annotations


class S2VCError(Exception):
    """Base class of every error S2VC raises on purpose (bad input files, not programming errors)."""


class BitstreamError(S2VCError):
    """A bitstream is malformed, truncated, corrupt, or not an S2VC bitstream at all."""


class CheckpointError(S2VCError):
    """A checkpoint folder or file is missing, or its tensors do not fit the model (names the file and keys)."""


class ModelMismatchError(S2VCError):
    """A bitstream was made by a different model (preset or weights) than the one asked to decode it."""


class DecoderMismatchError(S2VCError):
    """This machine cannot reproduce the encoder's pictures: the stream was coded on another kind of machine, or a
    decoded picture differs from the encoder's (the message names the frame and both machines)."""
