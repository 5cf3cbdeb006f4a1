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


@given(blocks=st.lists(fields, min_size=1, max_size=40))
def test_whole_blocks_encode_as_field_by_field_and_the_cache_stays_bounded(
    blocks: list[list[tuple[bytes, bytes]]],
) -> None:
    cached, plain = StaticEncoder(), StaticEncoder()
    for block in blocks + blocks:  # each block twice: the second time from the cache
        assert cached.encode_plain(block) == plain.encode(block)
        assert len(cached._blocks) <= 16
    assert all(len(key) <= 16 for key in cached._blocks)


def test_a_cached_block_still_acknowledges_a_new_table_size() -> None:
    encoder = StaticEncoder()
    block = [(b":status", b"200"), (b"server", b"x")]
    assert encoder.encode_plain(block) == b"\x88" + encode_field(b"server", b"x")
    encoder.header_table_size = 0
    assert encoder.encode_plain(block) == b"\x20\x88" + encode_field(b"server", b"x")
    assert encoder.encode_plain(block) == b"\x88" + encode_field(b"server", b"x")


def test_long_values_are_not_cached() -> None:
    encoder = StaticEncoder()
    encoder.encode([(b"x-big", b"v" * 1000), (b"x-small", b"v")])
    assert list(encoder._cache) == [(b"x-small", b"v")]


# -- the decoder's cache (asgi_sansio/_http2.py's _Decoder) ---------------------------------------

repeated_lists = st.lists(fields, min_size=1, max_size=3).flatmap(
    lambda pool: st.lists(st.sampled_from(pool), min_size=1, max_size=12))


@given(requests=repeated_lists, sizes=st.lists(st.sampled_from([None, 0, 64, 4096]), max_size=12))
def test_cached_decoding_matches_hpack(requests: list[list[tuple[bytes, bytes]]],
                                       sizes: list[int | None]) -> None:
    # hpack's stateful Encoder (dynamic table, as clients use it) against our caching decoder
    # and a plain hpack Decoder, block by block; now and then the table size changes.
    from hpack import Encoder

    from asgi_sansio._http2 import _Decoder

    encoder, ours, theirs = Encoder(), _Decoder(), Decoder()
    ours.max_header_list_size = 1 << 20
    for i, block in enumerate(requests):
        size = sizes[i] if i < len(sizes) else None
        if size is not None:
            encoder.header_table_size = size
        data = encoder.encode(block)
        expected = theirs.decode(data, raw=True)
        assert ours.decode(data, raw=True) == expected
        assert [(bytes(n), bytes(v)) for n, v in expected] == block


def test_a_repeated_block_is_served_from_the_cache() -> None:
    from hpack import Encoder

    from asgi_sansio._http2 import _Decoder

    encoder, decoder, reference = Encoder(), _Decoder(), Decoder()
    decoder.max_header_list_size = 1 << 20
    block = [(b":method", b"GET"), (b":path", b"/x"), (b"user-agent", b"test")]
    def both(data: bytes) -> list[tuple[bytes, bytes]]:
        ours = decoder.decode(data, raw=True)
        assert ours == reference.decode(data, raw=True)
        return ours

    first = encoder.encode(block)  # inserts into the table: not cacheable
    both(first)
    assert not decoder._cache
    again = encoder.encode(block)  # indexes only
    assert both(again) == block
    assert list(decoder._cache) == [(again, True)]
    assert both(again) == block
    both(encoder.encode([(b"x-new", b"1")]))  # the table changes...
    # ...so the same bytes now point elsewhere (the indexes moved) and are decoded afresh.
    moved = both(again)
    assert moved != block and (b"x-new", b"1") in moved
