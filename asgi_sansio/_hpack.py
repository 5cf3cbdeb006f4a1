"""A stateless HPACK encoder for the header blocks we send, cached per field.

h2 encodes with hpack's ``Encoder``, which inserts every field into the dynamic table and
searches it again for each field: about a tenth of an HTTP/2 request's server CPU.  Response
fields repeat from one response to the next (``content-type``, ``server``, the ``date`` of this
second) and the dynamic table buys a few dozen bytes per response, so this encoder never uses
it, as nginx does not: each field is a static-table index or a literal "without indexing"
(RFC 7541 6.2.2), never-indexed (6.2.3) for credentials and cookies.  Nothing depends on what
was sent before, so each field's bytes are computed once and cached (bounded), and so are whole
blocks of plain fields (a response head repeats whole, but for its date).  hpack still does
the Huffman coding and every decoding; ``tests/test_http2.py`` decodes our blocks with hpack.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import NeverIndexedHeaderTuple
from hpack.hpack import encode_integer
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

_HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
# RFC 7541 Appendix A, 1-based: the exact pairs, and the first index of each name.
_STATIC_PAIRS: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAMES: dict[bytes, int] = {}
for _index, _pair in enumerate(HeaderTable.STATIC_TABLE, start=1):
    _STATIC_PAIRS.setdefault(_pair, _index)
    _STATIC_NAMES.setdefault(_pair[0], _index)
_SECRET = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})
_CACHE_SIZE = 2048  # fields; dropped wholesale when full (the common ones return at once)
_CACHED_FIELD_SIZE = 256  # bytes: a long value is rarely repeated, and would make the cache big
_BLOCK_CACHE_SIZE = 16  # whole blocks (a few response heads a second, each with its date)
_CACHED_BLOCK_FIELDS = 16  # fields: a block with more is not cached
_CACHED_BLOCK_SIZE = 1024  # encoded bytes; Huffman coding at best takes 5 bits of 8 per octet


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 5.1 (hpack's own encoder), with ``first``'s high bits, the representation's
    pattern, set in the prefix byte."""
    out = encode_integer(value, prefix_bits)
    out[0] |= first
    return bytes(out)


def _string(data: bytes) -> bytes:
    """RFC 7541 5.2: Huffman-coded when that is shorter."""
    coded = _HUFFMAN.encode(data)
    if len(coded) < len(data):
        return _integer(len(coded), 7, 0x80) + coded
    return _integer(len(data), 7, 0) + data


def encode_field(name: bytes, value: bytes, never_indexed: bool = False) -> bytes:
    """One field as its static index, or as a literal that leaves the dynamic table alone."""
    if not never_indexed:
        index = _STATIC_PAIRS.get((name, value))
        if index is not None:
            return _integer(index, 7, 0x80)  # 6.1
    pattern = 0x10 if never_indexed else 0x00
    name_index = _STATIC_NAMES.get(name)
    if name_index is not None:
        return _integer(name_index, 4, pattern) + _string(value)
    return bytes((pattern,)) + _string(name) + _string(value)


class StaticEncoder:
    """Stands in for ``hpack.Encoder`` in an ``h2`` connection (see the module docstring)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, bytes], bytes] = {}
        self._blocks: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}
        self._size = 4096  # the peer's SETTINGS_HEADER_TABLE_SIZE
        self._announce = False

    @property
    def header_table_size(self) -> int:
        return self._size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        # RFC 7541 4.2: a new maximum is acknowledged by a size update at the start of the
        # next block; ours says 0, which is all we ever use and fits any maximum.
        self._size = value
        self._announce = True

    def encode_plain(self, fields: list[tuple[bytes, bytes]]) -> bytes:
        """``encode()`` for a list of plain ``(bytes, bytes)`` tuples (never a
        ``NeverIndexedHeaderTuple``, which compares equal to a plain one), cached whole."""
        if self._announce or len(fields) > _CACHED_BLOCK_FIELDS:
            return self.encode(fields)
        key = tuple(fields)
        block = self._blocks.get(key)
        if block is None:
            block = self.encode(fields)
            if len(block) <= _CACHED_BLOCK_SIZE:  # so the key's fields are within ~1.6x that
                if len(self._blocks) >= _BLOCK_CACHE_SIZE:
                    self._blocks.clear()
                self._blocks[key] = block
        return block

    def encode(self, headers: Iterable[Any], huffman: bool = True) -> bytes:
        cache = self._cache
        parts: list[bytes] = []
        if self._announce:
            self._announce = False
            parts.append(b"\x20")  # 6.3: dynamic table size update to 0
        for field in headers:
            name, value = field[0], field[1]
            if isinstance(name, str):
                name = name.encode("utf-8")
            if isinstance(value, str):
                value = value.encode("utf-8")
            if isinstance(field, NeverIndexedHeaderTuple) or name in _SECRET or (
                len(field) > 2 and field[2]
            ):
                parts.append(encode_field(name, value, never_indexed=True))
                continue
            key = (name, value)
            encoded = cache.get(key)
            if encoded is None:
                encoded = encode_field(name, value)
                if len(name) + len(value) <= _CACHED_FIELD_SIZE:
                    if len(cache) >= _CACHE_SIZE:
                        cache.clear()
                    cache[key] = encoded
            parts.append(encoded)
        return b"".join(parts)
