"""Footers of single row groups of a parquet file, so a reader can let go of the whole file's footer.

A parquet file's footer describes every column chunk of every row group; pyarrow parses it into
~1.8 KB per chunk (28 MB for 1,600 columns x 10 row groups, ~180 MB for Numerai's full train file)
and holds it while the file is open. The loader fills its matrix row group by row group, so the last
row groups' blocks of the matrix are touched while that footer is still alive: the footer adds to the
peak. :func:`tail_footers` builds, for the last row groups only, a footer that describes that one row
group (the file's schema and key-value metadata, then the one row group's serialized bytes): the loader
reads those row groups through it and frees the whole footer first. Given the columns to be read (of a
flat schema), the footer describes only those: the schema's leaves, the row group's column chunks and the
column orders are picked element by element, and the key-value metadata (which describes every column) is
left out, so 783 of 3,599 columns make a footer ~20x smaller (pyarrow holds ~12 MiB for a one-row-group
footer of every column).

The footer is Thrift's compact protocol; only skipping values is needed (no field is decoded but the
row-group list's header). Anything unexpected (an encrypted footer, a layout this does not recognise, a
row group that does not match the one pyarrow parsed) returns no footers: the loader then reads every
row group through the whole footer, as before.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_LIST, _SET, _MAP, _STRUCT, _BINARY, _DOUBLE, _BYTE = 9, 10, 11, 12, 8, 7, 3
_ROW_GROUPS_FIELD = 4  # FileMetaData.row_groups: list<RowGroup>


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        c = buf[pos]
        pos += 1
        out |= (c & 0x7F) << shift
        if c < 0x80:
            return out, pos
        shift += 7


def _skip_struct(buf: bytes, pos: int) -> int:
    """The position after the struct whose first field header is at ``pos`` (iterative: a footer holds
    hundreds of thousands of values, and a function call per value would double the time)."""
    # the stack: -1 for a struct being read, else a list's remaining elements * 16 + their type
    stack = [-1]
    while stack:
        top = stack[-1]
        if top < 0:
            b = buf[pos]
            pos += 1
            if b == 0:
                stack.pop()
                continue
            if not b & 0xF0:  # long-form field id: a zigzag varint follows the header
                while buf[pos] & 0x80:
                    pos += 1
                pos += 1
            kind = b & 0x0F
        elif top < 16:
            stack.pop()
            continue
        else:
            stack[-1] = top - 16
            kind = top & 0x0F
        if kind <= 2:  # booleans: the value is the type
            continue
        if 4 <= kind <= 6:  # varints
            while buf[pos] & 0x80:
                pos += 1
            pos += 1
        elif kind == _STRUCT:
            stack.append(-1)
        elif kind == _BINARY:
            n, pos = _varint(buf, pos)
            pos += n
        elif kind in (_LIST, _SET):
            n, elem, pos = _list_header(buf, pos)
            if elem <= 2:  # a list of booleans holds one byte per element
                pos += n
            elif n:
                stack.append(n * 16 + elem)
        else:
            pos = _skip_value(buf, pos, kind)
    return pos


def _skip_value(buf: bytes, pos: int, kind: int) -> int:
    if kind <= 2:  # booleans: the value is the type
        return pos
    if kind == _BYTE:
        return pos + 1
    if kind <= 6:  # i16, i32, i64: varints
        while buf[pos] & 0x80:
            pos += 1
        return pos + 1
    if kind == _STRUCT:
        return _skip_struct(buf, pos)
    if kind == _BINARY:
        n, pos = _varint(buf, pos)
        return pos + n
    if kind == _DOUBLE:
        return pos + 8
    if kind in (_LIST, _SET):
        n, elem, pos = _list_header(buf, pos)
        if elem <= 2:  # a list of booleans holds one byte per element
            return pos + n
        for _ in range(n):
            pos = _skip_value(buf, pos, elem)
        return pos
    if kind == _MAP:
        n, pos = _varint(buf, pos)
        if n:
            kv = buf[pos]
            pos += 1
            for _ in range(n):
                pos = _skip_value(buf, pos, kv >> 4)
                pos = _skip_value(buf, pos, kv & 0x0F)
        return pos
    raise ValueError(f"unknown thrift type {kind}")


def _list_header(buf: bytes, pos: int) -> tuple[int, int, int]:
    h = buf[pos]
    pos += 1
    n, elem = h >> 4, h & 0x0F
    if n == 15:
        n, pos = _varint(buf, pos)
    return n, elem, pos


def _encode_list_header(n: int, elem: int) -> bytes:
    if n < 15:
        return bytes([n << 4 | elem])
    out = bytearray([0xF0 | elem])
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_footer(path: Path) -> bytes:
    """The serialized FileMetaData of ``path`` (without the length and magic that follow it)."""
    with open(path, "rb") as f:
        f.seek(-8, 2)
        length, magic = struct.unpack("<i4s", f.read(8))
        if magic != b"PAR1":
            raise ValueError("not a plain (unencrypted) parquet footer")
        f.seek(-8 - length, 2)
        return f.read(length)


def _field_header(buf: bytes, pos: int, previous: int) -> tuple[int, int, int]:
    """(field id, type, position of the value) of the field header at ``pos``, ``previous`` being the
    struct's field before it; type 0 is the struct's end."""
    b = buf[pos]
    pos += 1
    if b == 0:
        return previous, 0, pos
    if b >> 4:  # a short header: the id as a delta from the previous field's
        return previous + (b >> 4), b & 0x0F, pos
    zigzag, pos = _varint(buf, pos)
    return (zigzag >> 1) ^ -(zigzag & 1), b & 0x0F, pos


def _row_group_list(footer: bytes) -> tuple[int, int, int]:
    """(position of the row-group list's header, number of row groups, position of the first one)."""
    pos = field = 0
    while True:
        field, kind, pos = _field_header(footer, pos, field)
        if kind == 0:
            raise ValueError("footer without row groups")
        if field == _ROW_GROUPS_FIELD and kind == _LIST:
            header = pos
            n, elem, pos = _list_header(footer, pos)
            if elem != _STRUCT:
                raise ValueError("row groups are not structs")
            return header, n, pos
        pos = _skip_value(footer, pos, kind)


def _trailing_row_groups(footer: bytes, n_columns: int, count: int) -> tuple[int, int, list[int]]:
    """(list header position, position after the list, start of each of the last ``count`` row groups).

    Row groups are found from the end: a RowGroup's serialized form begins with its column-chunk list's
    header (field 1, a list of ``n_columns`` structs); each candidate must skip exactly to where the next
    row group (or the rest of the footer) begins. Only the last ``count`` row groups are skipped.
    """
    header, n_groups, first = _row_group_list(footer)
    if not 0 < count <= n_groups:
        raise ValueError("no such row groups")
    marker = b"\x19" + _encode_list_header(n_columns, _STRUCT)
    # the end of the list: skip the last row group from its start, found below; until then, bound the
    # search by the end of the footer and check that the rest parses to its end
    starts: list[int] = []
    end = None
    limit = len(footer)
    search_from = len(footer)
    while len(starts) < count:
        cand = footer.rfind(marker, first, search_from)
        if cand < 0:
            raise ValueError("row group not found")
        search_from = cand
        try:
            after = _skip_struct(footer, cand)
        except (IndexError, ValueError):
            continue
        if end is None:  # the last row group: what follows it must be the footer's remaining fields
            try:
                rest = _skip_struct(footer, after) if after < limit else -1
            except (IndexError, ValueError):
                continue
            if rest != limit:
                continue
            end = after
        elif after != starts[0]:
            continue
        starts.insert(0, cand)
    if len(starts) == n_groups and starts[0] != first:
        raise ValueError("row groups do not start where the list does")
    assert end is not None
    return header, end, starts


def tail_footers(
    path: Path, metadata: pq.FileMetaData, groups: list[int], columns: list[str] | None = None
) -> dict[int, pq.FileMetaData]:
    """One-row-group footers for ``groups`` of ``path``, checked against ``metadata``; {} when they cannot
    be built. Row groups are found from the end of the footer, so the cost grows with how far from the
    end the first of ``groups`` is.

    ``columns``: the footers describe only these columns (of a flat schema, as Numerai's files are), a
    fraction of the size when a few of many columns are read; the key-value metadata (pandas' and Arrow's
    stored schema, which describe every column) is left out, so types come from the Parquet schema alone.
    A nested schema gives footers of every column."""
    if not groups:
        return {}
    first = min(groups)
    if first < 0 or max(groups) >= metadata.num_row_groups:
        return {}
    try:
        footer = read_footer(path)
        count = metadata.num_row_groups - first
        header, end, starts = _trailing_row_groups(footer, metadata.num_columns, count)
        ends = [*starts[1:], end]
        bounds = dict(zip(range(first, metadata.num_row_groups), zip(starts, ends, strict=True), strict=True))
        keep = _column_indices(metadata, columns)
        out: dict[int, pq.FileMetaData] = {}
        for g in groups:
            start, stop = bounds[g]
            part = footer[:header] + _encode_list_header(1, _STRUCT) + footer[start:stop] + footer[end:]
            if keep is not None:
                try:
                    part = _only_columns(part, keep)
                except _Nested:
                    keep = None
            framed = b"PAR1" + part + struct.pack("<i", len(part)) + b"PAR1"
            sub = pq.read_metadata(pa.BufferReader(framed))
            if not _same_row_group(sub, metadata, g, keep):
                return {}
            out[g] = sub
        return out
    except (ValueError, IndexError, OSError, pa.ArrowException):
        return {}


def _column_indices(metadata: pq.FileMetaData, columns: list[str] | None) -> list[int] | None:
    """Indices of ``columns`` in the file's column order, or None for all (or a name not found)."""
    if columns is None or metadata.num_row_groups == 0:
        return None
    # (not ``metadata.schema``: the FileMetaData keeps it, and it keeps the FileMetaData, a cycle that
    # holds the whole parsed footer until Python's cyclic GC runs)
    chunks = metadata.row_group(0)
    where = {chunks.column(j).path_in_schema: j for j in range(metadata.num_columns)}
    if any(c not in where for c in columns) or len(set(columns)) != len(columns):
        return None
    return sorted(where[c] for c in columns)


def _same_row_group(sub: pq.FileMetaData, full: pq.FileMetaData, g: int, keep: list[int] | None) -> bool:
    keep = list(range(full.num_columns)) if keep is None else keep
    if sub.num_row_groups != 1 or sub.num_columns != len(keep):
        return False
    a, b = sub.row_group(0), full.row_group(g)
    if a.num_rows != b.num_rows or a.total_byte_size != b.total_byte_size:
        return False
    for j in {0, len(keep) // 2, len(keep) - 1}:
        ca, cb = a.column(j), b.column(keep[j])
        if (ca.path_in_schema, ca.physical_type, ca.data_page_offset, ca.total_compressed_size) != (
            cb.path_in_schema,
            cb.physical_type,
            cb.data_page_offset,
            cb.total_compressed_size,
        ):
            return False
    return True


class _Nested(ValueError):
    """The schema is not flat: a footer of some columns is not built."""


_SCHEMA, _KEY_VALUE_METADATA, _COLUMN_ORDERS = 2, 5, 7
_RG_COLUMNS, _RG_SORTING_COLUMNS = 1, 4
_NUM_CHILDREN = 5  # SchemaElement.num_children


def _fields(buf: bytes, pos: int, lists: tuple[int, ...] = ()) -> tuple[list[tuple], int]:
    """(field id, type, start, end of the value, elements) of each field of the struct whose first field
    header is at ``pos``, and the position after the struct. ``elements``: the (start, end) of each
    element for the list fields named in ``lists``, else None. A boolean's value is its type."""
    out = []
    field = 0
    while True:
        field, kind, pos = _field_header(buf, pos, field)
        if kind == 0:
            return out, pos
        start = pos
        elements = None
        if field in lists and kind == _LIST:
            elements, pos = _items(buf, pos)
        else:
            pos = _skip_value(buf, pos, kind)
        out.append((field, kind, start, pos, elements))


def _items(buf: bytes, pos: int) -> tuple[list[tuple[int, int]], int]:
    """(start, end) of each element of the list whose header is at ``pos``; the position after it."""
    n, elem, pos = _list_header(buf, pos)
    if elem <= 2:
        raise ValueError("a list of booleans where structs were expected")
    out = []
    for _ in range(n):
        end = _skip_value(buf, pos, elem)
        out.append((pos, end))
        pos = end
    return out, pos


def _zigzag_varint(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _struct(fields: list[tuple[int, int, bytes]]) -> bytes:
    """A struct of (field id, type, value bytes) in compact protocol, its stop byte included."""
    out = bytearray()
    previous = 0
    for field, kind, value in fields:
        delta = field - previous
        if 0 < delta <= 15:
            out.append(delta << 4 | kind)
        else:
            out.append(kind)
            out += _zigzag_varint(field)
        out += value
        previous = field
    out.append(0)
    return bytes(out)


def _only_columns(footer: bytes, keep: list[int]) -> bytes:
    """A one-row-group FileMetaData that describes only the columns ``keep`` (indices, in order); one pass
    over the footer's bytes."""
    picked = _encode_list_header(len(keep), _STRUCT)
    out: list[tuple[int, int, bytes]] = []
    top, _ = _fields(footer, 0, lists=(_SCHEMA, _COLUMN_ORDERS))  # the row group: parsed below
    for field, kind, start, end, elements in top:
        if field == _SCHEMA and elements:  # the root, then one leaf per column when the schema is flat
            root, _ = _fields(footer, elements[0][0])
            children = [footer[s:e] for f, _, s, e, _ in root if f == _NUM_CHILDREN]
            leaves = elements[1:]
            if children != [_zigzag_varint(len(leaves))]:  # a group among the elements: nested
                raise _Nested("not a flat schema")
            count = _zigzag_varint(len(keep))
            root_fields = [(f, k, count if f == _NUM_CHILDREN else footer[s:e]) for f, k, s, e, _ in root]
            value = (
                _encode_list_header(len(keep) + 1, _STRUCT)
                + _struct(root_fields)
                + b"".join(footer[slice(*leaves[j])] for j in keep)
            )
        elif field == _ROW_GROUPS_FIELD:
            n, elem, at = _list_header(footer, start)
            if n != 1 or elem != _STRUCT:
                raise ValueError("not a one-row-group footer")
            parts = []
            for f, k, s, e, chunks in _fields(footer, at, lists=(_RG_COLUMNS,))[0]:
                if f == _RG_SORTING_COLUMNS:  # indices into the whole schema
                    continue
                if f == _RG_COLUMNS and chunks is not None:
                    parts.append((f, k, picked + b"".join(footer[slice(*chunks[j])] for j in keep)))
                else:
                    parts.append((f, k, footer[s:e]))
            value = _encode_list_header(1, _STRUCT) + _struct(parts)
        elif field == _KEY_VALUE_METADATA:  # Arrow's stored schema and pandas' describe every column
            continue
        elif field == _COLUMN_ORDERS and elements is not None:  # one per column
            value = picked + b"".join(footer[slice(*elements[j])] for j in keep)
        elif field > _COLUMN_ORDERS:  # encryption: not handled
            raise ValueError("an encrypted footer")
        else:
            value = footer[start:end]
        out.append((field, kind, value))
    return _struct(out)
