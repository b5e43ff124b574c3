"""Avro schemas (the .avsc files here are the single source of truth) and their wire codec."""

from schemas.codec import SINGLE_OBJECT_MARKER, Codec, codec

__all__ = ["SINGLE_OBJECT_MARKER", "Codec", "codec"]
