"""Zip structure without torch: is the central directory there and consistent?

torch.save, Lightning and SB3 all write zip archives whose end-of-central-directory
record (EOCD) is written last. While a file is still being written, or copied in
slowly, the tail is tensor data: no EOCD, or a stray "PK\\x05\\x06" inside data whose
offsets do not add up. So "complete" means: an EOCD that ends exactly at the end of
the file, a central directory that sits exactly before it, and every member's data
ending before the central directory starts.
"""

from __future__ import annotations

import struct
import zipfile
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


def _central_directory(fh: BinaryIO, size: int) -> tuple[int, int] | None:
    """(offset, size) of the central directory when the EOCD (or its zip64 form) is consistent."""
    found = _find_eocd(fh, size)
    if found is None:
        return None
    eocd_pos, record = found
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
        cd_size, cd_offset = struct.unpack("<QQ", z64[40:56])
        cd_end = z64_pos
    elif cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF:
        return None
    if cd_offset + cd_size != cd_end:
        return None
    if cd_size:
        fh.seek(cd_offset)
        if fh.read(4) != _CD_SIG:
            return None
    return cd_offset, cd_size


def zip_is_complete(path: Path) -> bool:
    """True when the archive's directory is present and every member lies before it."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            if fh.read(4) not in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
                return False
            cd = _central_directory(fh, size)
            if cd is None:
                return False
            cd_offset = cd[0]
            fh.seek(0)
            with zipfile.ZipFile(fh) as zf:
                for info in zf.infolist():
                    # 30-byte local header + name + extra, then the data; the local extra
                    # field may differ from the central one, so bound it by the data only.
                    if info.header_offset + 30 + info.compress_size > cd_offset:
                        return False
        return True
    except Exception:  # zipfile raises NotImplementedError, RuntimeError, ... on odd archives
        return False


def zip_names(path: Path) -> list[str]:
    """Member names of a complete archive (raises zipfile.BadZipFile / OSError otherwise)."""
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()
