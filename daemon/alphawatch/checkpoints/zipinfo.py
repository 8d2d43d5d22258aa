"""Zip structure without torch: is the central directory there and consistent?

torch.save, Lightning and SB3 all write zip archives whose end-of-central-directory
record (EOCD) is written last. While a file is still being written, or copied in
slowly, the tail is tensor data: no EOCD, or a stray "PK\\x05\\x06" inside data whose
offsets do not add up. So "complete" means: an EOCD that ends exactly at the end of
the file, a central directory that sits exactly before it, and every member's data
ending before the central directory starts.

The daemon's main process runs this on every candidate, so it reads the directory in
bounded chunks and never builds a `zipfile.ZipFile` (whose member list cost 180 MB for a
crafted 300,000-member archive), and an archive with more than MAX_MEMBERS members is
refused (`TooManyMembers`): no checkpoint writer makes one (torch.save writes one member
per storage, a few thousand for the largest models).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_EOCD_SIG = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_CD_SIG = b"PK\x01\x02"
_MAX_COMMENT = 0xFFFF
_CD_ENTRY = 46  # fixed part of a central directory entry
_CHUNK = 1 << 20
MAX_MEMBERS = 200_000


class TooManyMembers(ValueError):
    """The archive says, or turns out to hold, more than MAX_MEMBERS members."""


def _find_eocd(fh: BinaryIO, size: int) -> tuple[int, bytes] | None:
    """Position and bytes of an EOCD record that ends exactly at end of file, else None."""
    tail_len = min(size, _EOCD_SIZE + _MAX_COMMENT)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(_EOCD_SIG)
    while pos >= 0:
        record = tail[pos : pos + _EOCD_SIZE]
        if len(record) == _EOCD_SIZE:
            comment_len = struct.unpack("<H", record[20:22])[0]
            if pos + _EOCD_SIZE + comment_len == tail_len:
                return size - tail_len + pos, record
        pos = tail.rfind(_EOCD_SIG, 0, pos)
    return None


def _central_directory(fh: BinaryIO, size: int) -> tuple[int, int, int] | None:
    """(offset, size, member count) of the central directory when the EOCD (or its zip64
    form) is consistent."""
    found = _find_eocd(fh, size)
    if found is None:
        return None
    eocd_pos, record = found
    count = struct.unpack("<H", record[10:12])[0]
    cd_size, cd_offset = struct.unpack("<II", record[12:20])
    cd_end = eocd_pos
    # A zip64 locator right before the EOCD means a zip64 EOCD record sits between the
    # central directory and the EOCD (torch always writes one), and holds the real values.
    locator = b""
    if eocd_pos >= 20:
        fh.seek(eocd_pos - 20)
        locator = fh.read(20)
    if locator[:4] == _ZIP64_LOCATOR_SIG:
        z64_pos = struct.unpack("<Q", locator[8:16])[0]
        if z64_pos + 56 > eocd_pos - 20:
            return None
        fh.seek(z64_pos)
        z64 = fh.read(56)
        if z64[:4] != _ZIP64_EOCD_SIG:
            return None
        count = struct.unpack("<Q", z64[32:40])[0]
        cd_size, cd_offset = struct.unpack("<QQ", z64[40:56])
        cd_end = z64_pos
    elif cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF:
        return None
    if cd_offset + cd_size != cd_end:
        return None
    if count > MAX_MEMBERS:
        raise TooManyMembers(f"a zip archive of {count:,} members (alphawatch reads at most {MAX_MEMBERS:,})")
    if cd_size:
        fh.seek(cd_offset)
        if fh.read(4) != _CD_SIG:
            return None
    return cd_offset, cd_size, count


def _zip64_values(extra: bytes, csize: int, usize: int, offset: int) -> tuple[int, int]:
    """(compressed size, local header offset), from the zip64 extra field where they overflow."""
    i = 0
    while i + 4 <= len(extra):
        header_id, length = struct.unpack("<HH", extra[i : i + 4])
        data, i = extra[i + 4 : i + 4 + length], i + 4 + length
        if header_id != 1:
            continue
        values = [struct.unpack("<Q", data[j : j + 8])[0] for j in range(0, len(data) - 7, 8)]
        if usize == 0xFFFFFFFF and values:
            values.pop(0)
        if csize == 0xFFFFFFFF and values:
            csize = values.pop(0)
        if offset == 0xFFFFFFFF and values:
            offset = values.pop(0)
        break
    return csize, offset


def _entries(fh: BinaryIO, cd_offset: int, cd_size: int) -> Iterator[tuple[str, int, int]]:
    """(name, local header offset, compressed size) of each member, reading the directory in
    chunks (constant memory); ValueError where it is malformed, TooManyMembers past the cap."""
    fh.seek(cd_offset)
    left, buf, pos, count = cd_size, b"", 0, 0

    def need(n: int) -> bool:
        nonlocal buf, pos, left
        while len(buf) - pos < n and left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                break
            buf, pos, left = buf[pos:] + chunk, 0, left - len(chunk)
        return len(buf) - pos >= n

    while need(_CD_ENTRY):
        head = buf[pos : pos + _CD_ENTRY]
        if head[:4] != _CD_SIG:
            raise ValueError("central directory entry without its signature")
        flags = struct.unpack("<H", head[8:10])[0]
        csize, usize = struct.unpack("<II", head[20:28])
        name_len, extra_len, comment_len = struct.unpack("<HHH", head[28:34])
        offset = struct.unpack("<I", head[42:46])[0]
        total = _CD_ENTRY + name_len + extra_len + comment_len
        if not need(total):
            raise ValueError("central directory cut short")
        raw_name = buf[pos + _CD_ENTRY : pos + _CD_ENTRY + name_len]
        extra = buf[pos + _CD_ENTRY + name_len : pos + _CD_ENTRY + name_len + extra_len]
        if 0xFFFFFFFF in (csize, usize, offset):
            csize, offset = _zip64_values(extra, csize, usize, offset)
        count += 1
        if count > MAX_MEMBERS:
            raise TooManyMembers(f"a zip archive of more than {MAX_MEMBERS:,} members")
        yield raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace"), offset, csize
        pos += total
    if left > 0 or pos != len(buf):
        raise ValueError("central directory size does not match its entries")


def zip_is_complete(path: Path) -> bool:
    """True when the archive's directory is present and every member lies before it.

    False on any doubt; raises TooManyMembers (a verdict more bytes cannot change).
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            if fh.read(4) not in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
                return False
            cd = _central_directory(fh, size)
            if cd is None:
                return False
            cd_offset, cd_size, _count = cd
            for _name, header_offset, compress_size in _entries(fh, cd_offset, cd_size):
                # 30-byte local header + name + extra, then the data; the local extra
                # field may differ from the central one, so bound it by the data only.
                if header_offset + 30 + compress_size > cd_offset:
                    return False
        return True
    except TooManyMembers:
        raise
    except Exception:  # a malformed or still-growing archive
        return False


def zip_names(path: Path) -> Iterator[str]:
    """Member names of a complete archive, one at a time (ValueError / OSError otherwise)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        cd = _central_directory(fh, size)
        if cd is None:
            raise ValueError("no consistent central directory")
        for name, _offset, _csize in _entries(fh, cd[0], cd[1]):
            yield name
