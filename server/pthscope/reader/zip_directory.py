"""A minimal zip central-directory reader: member names, sizes and data offsets.

`zipfile.ZipFile` builds a full `ZipInfo` object per member, which dominates listing time for
checkpoints with tens of thousands of storages. This reads only what pthscope needs, handles
zip64 (torch writes it for large files) and reports damage as `ZipError` with a location.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_EOCD_SIZE = 22
_CENTRAL_ENTRY = struct.Struct("<10xHHHIIIHHHHHII")  # after the signature and versions
_MAX_COMMENT = 0xFFFF


class ZipError(Exception):
    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


@dataclass(slots=True)
class Member:
    name: str
    size: int  # uncompressed
    compressed_size: int
    method: int
    header_offset: int


def read_directory(f: BinaryIO, file_size: int, max_members: int = 10_000_000,
                   duplicates: list[str] | None = None) -> dict[str, Member]:
    """Members by name, from the central directory at the end of the file.

    A name that appears twice keeps its first entry (torch's reader found the first in our
    tests; other zip tools take the last) and is added to `duplicates`.
    """
    tail_len = min(file_size, _EOCD_SIZE + _MAX_COMMENT + 20)
    f.seek(file_size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        raise ZipError("the zip directory at the end of the file is missing: the file is truncated or "
                       "was not fully written", "end of file")
    (_, _, _, _, count, dir_size, dir_offset, _) = struct.unpack_from("<4sHHHHIIH", tail, at)
    eocd_pos = file_size - tail_len + at
    if count == 0xFFFF or dir_offset == 0xFFFFFFFF or dir_size == 0xFFFFFFFF:
        count, dir_size, dir_offset = _zip64_end(f, tail, at, file_size - tail_len)
    if dir_offset + dir_size > eocd_pos or count > max_members:
        raise ZipError(f"the zip directory claims {count:,} members in {dir_size:,} bytes at {dir_offset:,}, "
                       f"past the end of a {file_size:,}-byte file: it is truncated or corrupt", "zip directory")
    f.seek(dir_offset)
    directory = f.read(dir_size)
    members: dict[str, Member] = {}
    pos = 0
    unpack = _CENTRAL_ENTRY.unpack_from
    size = len(directory)
    for index in range(count):
        if pos + 46 > size or directory[pos:pos + 4] != _CENTRAL:
            raise ZipError(f"zip directory entry {index} is damaged", f"zip directory byte {pos}")
        (method, _, _, _, csize, usize, name_len, extra_len, comment_len, _, _, _, offset) = unpack(
            directory, pos)
        name_start = pos + 46
        name = directory[name_start:name_start + name_len].decode("utf-8", "replace")
        if csize == 0xFFFFFFFF or usize == 0xFFFFFFFF or offset == 0xFFFFFFFF:
            usize, csize, offset = _zip64_extra(directory[name_start + name_len:name_start + name_len + extra_len],
                                                usize, csize, offset)
        if name not in members:
            members[name] = Member(name, usize, csize, method, offset)
        elif duplicates is not None:
            duplicates.append(name)
        pos = name_start + name_len + extra_len + comment_len
        if pos > len(directory):
            raise ZipError("the zip directory ends inside an entry", f"zip directory entry {index}")
    return members


def read_member(f: BinaryIO, member: Member, file_size: int) -> bytes:
    data_start = data_offset(f, member)
    if data_start + member.compressed_size > file_size:
        raise ZipError(f"{member.name} ends past the end of the file: it is truncated", member.name)
    f.seek(data_start)
    raw = f.read(member.compressed_size)
    if member.method == 0:
        return raw
    if member.method == 8:
        inflater = zlib.decompressobj(-15)
        try:
            data = inflater.decompress(raw, member.size)
        except zlib.error as exc:
            raise ZipError(f"{member.name} cannot be inflated ({exc}): it is corrupt", member.name) from None
        if len(data) != member.size:
            raise ZipError(f"{member.name} does not inflate to its declared size", member.name)
        return data
    raise ZipError(f"{member.name} uses zip compression method {member.method}, which pthscope cannot read",
                   member.name)


def data_offset(f: BinaryIO, member: Member) -> int:
    """Where a member's bytes start: after its local header (whose extra field may differ)."""
    f.seek(member.header_offset)
    header = f.read(30)
    if len(header) < 30 or header[:4] != _LOCAL:
        raise ZipError(f"the local header of {member.name} is damaged", f"byte {member.header_offset}")
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    return member.header_offset + 30 + name_len + extra_len


def _zip64_end(f: BinaryIO, tail: bytes, at: int, tail_start: int) -> tuple[int, int, int]:
    locator = at - 20
    if locator < 0 or tail[locator:locator + 4] != _EOCD64_LOCATOR:
        raise ZipError("the zip64 end-of-directory locator is missing", "end of file")
    (eocd64_offset,) = struct.unpack_from("<Q", tail, locator + 8)
    f.seek(eocd64_offset)
    record = f.read(56)
    if len(record) < 56 or record[:4] != _EOCD64:
        raise ZipError("the zip64 end-of-directory record is damaged", f"byte {eocd64_offset}")
    count, dir_size, dir_offset = struct.unpack_from("<QQQ", record, 32)
    return count, dir_size, dir_offset


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            values = list(struct.unpack_from(f"<{size // 8}Q", extra, pos + 4))
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
            break
        pos += 4 + size
    return usize, csize, offset


def file_size_of(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size
