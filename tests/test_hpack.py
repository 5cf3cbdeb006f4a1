"""The stateless HPACK encoder (``asgi_sansio/_hpack.py``) against hpack's own decoder."""

from __future__ import annotations

from hpack import Decoder, NeverIndexedHeaderTuple
from hpack.table import HeaderTable
from hypothesis import given
from hypothesis import strategies as st

from asgi_sansio._hpack import StaticEncoder, encode_field

TOKEN = "abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~"
names = st.one_of(
    st.sampled_from([n for n, _ in HeaderTable.STATIC_TABLE]),
    st.text(TOKEN, min_size=1, max_size=20).map(str.encode),
)
values = st.one_of(
    st.sampled_from([v for _, v in HeaderTable.STATIC_TABLE]),
    st.binary(max_size=300).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00")),
)
fields = st.lists(st.tuples(names, values), max_size=12)


@given(blocks=st.lists(fields, min_size=1, max_size=4))
def test_hpack_decodes_what_we_encode(blocks: list[list[tuple[bytes, bytes]]]) -> None:
    encoder, decoder = StaticEncoder(), Decoder()
    for block in blocks:  # several blocks on one connection: no state may leak between them
        decoded = decoder.decode(encoder.encode(block), raw=True)
        assert [(bytes(n), bytes(v)) for n, v in decoded] == block
    assert len(decoder.header_table.dynamic_entries) == 0  # the dynamic table is never used


def test_static_pairs_are_one_byte_and_secrets_are_never_indexed() -> None:
    assert encode_field(b":status", b"200") == b"\x88"  # RFC 7541 Appendix A: index 8
    assert encode_field(b":status", b"201")[0] == 0x08  # literal, name index 8, no indexing
    decoded = Decoder().decode(StaticEncoder().encode(
        [(b"set-cookie", b"id=1"), (b"authorization", b"x"), (b"server", b"a")]), raw=True)
    assert [type(f) is NeverIndexedHeaderTuple for f in decoded] == [True, True, False]


def test_a_new_table_size_is_acknowledged() -> None:
    # RFC 7541 4.2: after SETTINGS_HEADER_TABLE_SIZE changes, the next block starts with a
    # dynamic table size update (ours: 0), and only that block.
    encoder, decoder = StaticEncoder(), Decoder()
    encoder.header_table_size = 0
    decoder.max_allowed_table_size = 0
    first = encoder.encode([(b"server", b"x")])
    assert first[:1] == b"\x20"
    assert decoder.decode(first, raw=True) == [(b"server", b"x")]
    assert encoder.encode([(b"server", b"x")])[:1] != b"\x20"


def test_long_values_are_not_cached() -> None:
    encoder = StaticEncoder()
    encoder.encode([(b"x-big", b"v" * 1000), (b"x-small", b"v")])
    assert list(encoder._cache) == [(b"x-small", b"v")]
