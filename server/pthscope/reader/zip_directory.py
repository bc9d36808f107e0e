"""A zip central-directory reader that finds members the way torch's reader (miniz) does.

`zipfile.ZipFile` builds a full `ZipInfo` object per member, which dominates listing time for
checkpoints with tens of thousands of storages; and it looks names up by its own rules. This
reads only what pthscope needs and mirrors miniz 3 (`mz_zip_reader_read_central_dir`,
`mz_zip_reader_locate_file`), which torch's `PyTorchStreamReader` uses:

* the end record is the last `PK\\5\\6` with at least 22 bytes after it; a zip64 locator right
  before it makes the zip64 record (first the one right before the locator, else where the
  locator points) the source of the entry count and directory offset;
* entries keep their order (torch takes the archive name from the first one); names are bytes;
* a lookup compares names ASCII-case-insensitively, by binary search over miniz's heap sort of
  the names — which of several same-named entries it finds depends on that sort, so it is
  replayed exactly when names collide;
* what miniz refuses at open (a stored member whose sizes differ, a member past the end,
  encrypted central directories, multi-disk archives) and at extraction (encryption, methods
  other than stored/deflate) is reported as `refusals` / by `unreadable_reason`.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import BinaryIO

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_EOCD_SIZE = 22
_EOCD64_SIZE = 56
_LOCATOR_SIZE = 20
# flags, method, compressed size, size, name/extra/comment lengths, start disk, header offset
_CENTRAL_ENTRY = struct.Struct("<8xHH8xIIHHHH6xI")
_SEARCH_BACK = 0xFFFF + _EOCD_SIZE + 4096  # miniz gives up after about this many bytes
_QUICK_SEARCH_BACK = 4096
_U32 = 0xFFFFFFFF
_ENCRYPTED, _PATCH, _STRONG, _MASKED = 1, 1 << 5, 1 << 6, 1 << 13


class ZipError(Exception):
    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


@dataclass(slots=True)
class Member:
    name: str  # for display; lookups use `raw`
    size: int  # uncompressed
    compressed_size: int
    method: int
    header_offset: int
    raw: bytes = b""
    flags: int = 0

    def unreadable_reason(self) -> str | None:
        """Why miniz would refuse to extract this member, or None."""
        if self.flags & (_ENCRYPTED | _STRONG | _PATCH):
            return "it is encrypted (or a patch), which torch's zip reader refuses"
        if self.method not in (0, 8):
            return f"it uses compression method {self.method}; torch's zip reader reads only stored and deflate"
        return None


class ZipDirectory:
    """The members of an archive, in central-directory order, looked up as miniz looks them up.

    Per entry only its raw name and a tuple of its fields are kept; a `Member` is made when one
    is asked for (a checkpoint with 30,000 storages looks up each once, by name)."""

    def __init__(self, names: list[bytes], fields: list[tuple[int, ...]], refusals: list[str]) -> None:
        self.names = names  # raw names, in central-directory order
        self._fields = fields  # per entry: the _CENTRAL_ENTRY fields, zip64 sizes and offset applied
        self.refusals = refusals  # why miniz would refuse to open the archive at all
        self._members: dict[int, Member] = {}
        self._entries: list[Member] | None = None
        # Lower-cased name → index, made in C; when two names fold to one, miniz's sort decides.
        folded = dict(zip(map(bytes.lower, names), range(len(names)), strict=True))
        self._by_folded: dict[bytes, int] | None = folded if len(folded) == len(names) else None
        self._sorted: list[int] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[Member]:
        return iter(self.entries)

    @property
    def entries(self) -> list[Member]:
        if self._entries is None:
            self._entries = [self.member(i) for i in range(len(self.names))]
        return self._entries

    def member(self, index: int) -> Member:
        """The entry at `index` in central-directory order."""
        found = self._members.get(index)
        if found is None:
            raw = self.names[index]
            flags, method, compressed_size, size, *_, header_offset = self._fields[index]
            found = self._members[index] = Member(raw.decode("utf-8", "replace"), size, compressed_size, method,
                                                  header_offset, raw, flags)
        return found

    def colliding_names(self) -> list[str]:
        """Names that appear more than once, ignoring ASCII case."""
        if self._by_folded is not None:
            return []
        seen: dict[bytes, int] = {}
        for raw in self.names:
            folded = raw.lower()
            seen[folded] = seen.get(folded, 0) + 1
        return [self.member(i).name for i, raw in enumerate(self.names) if seen[raw.lower()] > 1]

    def get(self, name: str | bytes) -> Member | None:
        """The member miniz's mz_zip_reader_locate_file(name, flags=0) finds, or None."""
        index = self.index(name)
        return None if index is None else self.member(index)

    def index(self, name: str | bytes) -> int | None:
        """The index of the entry `get(name)` finds, or None."""
        key = name.encode("utf-8", "surrogateescape") if isinstance(name, str) else name
        if b"\0" in key:
            key = key.split(b"\0", 1)[0]  # torch passes a C string
        key = key.lower()
        if self._by_folded is not None:
            return self._by_folded.get(key)
        if self._sorted is None:
            self._sorted = _miniz_heap_sort([raw.lower() for raw in self.names])
        folded = [self.names[i].lower() for i in self._sorted]
        low, high = 0, len(folded) - 1
        while low <= high:
            middle = low + ((high - low) >> 1)
            if folded[middle] == key:
                return self._sorted[middle]
            if folded[middle] < key:
                low = middle + 1
            else:
                high = middle - 1
        return None

    def folded_names(self) -> dict[bytes, int] | None:
        """Lower-cased name → index, for callers that look up many names at once; None when
        names collide (then only `index`/`get` find what miniz finds)."""
        return self._by_folded

    def sizes(self) -> list[int]:
        """The uncompressed size of each entry, in central-directory order."""
        return list(map(itemgetter(3), self._fields))

    def header_offsets(self) -> list[int]:
        """Each entry's local-header offset, in directory order (where `values` finds its bytes)."""
        return list(map(itemgetter(-1), self._fields))


def _miniz_heap_sort(keys: list[bytes]) -> list[int]:
    """miniz's mz_zip_reader_sort_central_dir_offsets_by_filename, step for step: a heap sort of
    entry indices by lower-cased name (bytes order is miniz's filename_less). Not stable, so the
    order of equal names is whatever this exact sequence of swaps leaves."""
    size = len(keys)
    indices = list(range(size))
    if size <= 1:
        return indices

    def sift(root: int, end: int) -> None:
        while True:
            child = 2 * root + 1
            if child >= end:
                return
            if child + 1 < end and keys[indices[child]] < keys[indices[child + 1]]:
                child += 1
            if not keys[indices[root]] < keys[indices[child]]:
                return
            indices[root], indices[child] = indices[child], indices[root]
            root = child

    for start in range((size - 2) >> 1, -1, -1):
        sift(start, size)
    for end in range(size - 1, 0, -1):
        indices[end], indices[0] = indices[0], indices[end]
        sift(0, end)
    return indices


def read_directory(f: BinaryIO, file_size: int, max_members: int = 10_000_000) -> ZipDirectory:
    """The central directory at the end of the file, as miniz reads it."""
    eocd_pos, eocd = _find_end_record(f, file_size)
    (_, disk, cdir_disk, on_disk, count, dir_size, dir_offset, _) = struct.unpack("<4sHHHHIIH", eocd)
    refusals: list[str] = []
    zip64 = False
    if eocd_pos >= _LOCATOR_SIZE + _EOCD64_SIZE:
        f.seek(eocd_pos - _LOCATOR_SIZE)
        locator = f.read(_LOCATOR_SIZE)
        if locator[:4] == _EOCD64_LOCATOR:
            zip64 = True
            disks, record = _zip64_end(f, locator, eocd_pos, file_size)
            on_disk, count, dir_size, dir_offset = struct.unpack_from("<QQQQ", record, 24)
            disk, cdir_disk = struct.unpack_from("<II", record, 16)
            if disks != 1:
                refusals.append("the archive says it spans several disks")
    if count != on_disk or (disk | cdir_disk) and (disk, cdir_disk) != (1, 1):
        refusals.append("the archive says it spans several disks")
    if dir_offset + dir_size > eocd_pos or count > max_members or dir_size < count * 46:
        raise ZipError(f"the zip directory claims {count:,} members in {dir_size:,} bytes at {dir_offset:,}, "
                       f"past the end of a {file_size:,}-byte file: it is truncated or corrupt", "zip directory")
    archive_size = file_size - (eocd_pos - (dir_offset + dir_size) - (_EOCD64_SIZE + _LOCATOR_SIZE if zip64 else 0))
    f.seek(dir_offset)
    directory = f.read(dir_size)
    names: list[bytes] = []
    fields: list[tuple[int, ...]] = []
    add_name, add_fields = names.append, fields.append
    pos = 0
    unpack = _CENTRAL_ENTRY.unpack_from
    size = len(directory)
    # One pass, one unpack per entry, its tuple kept as the entry's fields; the checks miniz makes
    # at open are one test that every sound entry passes (`_check_entry` names what is wrong).
    for index in range(count):
        if pos + 46 > size or not directory.startswith(_CENTRAL, pos):
            raise ZipError(f"zip directory entry {index} is damaged", f"zip directory byte {pos}")
        entry = unpack(directory, pos)
        flags, method, csize, usize, name_len, extra_len, comment_len, disk_start, offset = entry
        name_end = pos + 46 + name_len
        add_name(directory[pos + 46:name_end])
        if csize == _U32 or usize == _U32 or offset == _U32:
            usize, csize, offset = _zip64_extra(directory[name_end:name_end + extra_len], usize, csize, offset)
            entry = (flags, method, csize, usize, name_len, extra_len, comment_len, disk_start, offset)
        add_fields(entry)
        if (disk_start == 0xFFFF or offset + 30 + csize > archive_size or flags & _MASKED
                or (method == 0 and usize != csize or usize and not csize) and csize != _U32 and usize != _U32):
            _check_entry(names[-1], flags, method, csize, usize, offset, disk_start, archive_size, refusals)
        pos = name_end + extra_len + comment_len
        if pos > size:
            raise ZipError("the zip directory ends inside an entry", f"zip directory entry {index}")
    return ZipDirectory(names, fields, refusals)


def _find_end_record(f: BinaryIO, file_size: int) -> tuple[int, bytes]:
    """The last end-of-directory signature with a whole record after it (miniz scans back). The
    last 4 KiB first: where the record is for every archive without a long comment."""
    for window in (_QUICK_SEARCH_BACK, _SEARCH_BACK):
        tail_len = min(file_size, window)
        f.seek(file_size - tail_len)
        tail = f.read(tail_len)
        at = tail.rfind(_EOCD)
        while at >= 0 and len(tail) - at < _EOCD_SIZE:
            at = tail.rfind(_EOCD, 0, at)
        if at >= 0:
            return file_size - tail_len + at, tail[at:at + _EOCD_SIZE]
        if tail_len == file_size:
            break
    raise ZipError("the zip directory at the end of the file is missing: the file is truncated or "
                   "was not fully written", "end of file")


def _check_entry(raw: bytes, flags: int, method: int, compressed_size: int, size: int, header_offset: int,
                 disk_start: int, archive_size: int, refusals: list[str]) -> None:
    if len(refusals) > 20:
        return
    name = raw.decode("utf-8", "replace")
    if compressed_size != _U32 and size != _U32 and (
            method == 0 and size != compressed_size or size and not compressed_size):
        refusals.append(f"{name}: its compressed and uncompressed sizes contradict each other")
    if disk_start == 0xFFFF:
        refusals.append(f"{name}: it says it starts on another disk")
    if header_offset + 30 + compressed_size > archive_size:
        refusals.append(f"{name}: it ends past the end of the archive")
    if flags & _MASKED:
        refusals.append(f"{name}: its central directory entry is masked (encrypted directory)")


def read_member(f: BinaryIO, member: Member, file_size: int) -> bytes:
    reason = member.unreadable_reason()
    if reason:
        raise ZipError(f"{member.name} cannot be read: {reason}", member.name)
    data_start = data_offset(f, member)
    if data_start + member.compressed_size > file_size:
        raise ZipError(f"{member.name} ends past the end of the file: it is truncated", member.name)
    f.seek(data_start)
    raw = f.read(member.compressed_size)
    if member.method == 0:
        return raw
    inflater = zlib.decompressobj(-15)
    try:
        data = inflater.decompress(raw, member.size)
    except zlib.error as exc:
        raise ZipError(f"{member.name} cannot be inflated ({exc}): it is corrupt", member.name) from None
    if len(data) != member.size:
        raise ZipError(f"{member.name} does not inflate to its declared size", member.name)
    return data


def data_offset(f: BinaryIO, member: Member) -> int:
    """Where a member's bytes start: after its local header (whose name and extra field may
    differ from the central directory's; miniz, like this, uses only their lengths)."""
    f.seek(member.header_offset)
    header = f.read(30)
    if len(header) < 30 or header[:4] != _LOCAL:
        raise ZipError(f"the local header of {member.name} is damaged", f"byte {member.header_offset}")
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    return member.header_offset + 30 + name_len + extra_len


def _zip64_end(f: BinaryIO, locator: bytes, eocd_pos: int, file_size: int) -> tuple[int, bytes]:
    """The zip64 end record: right before the locator if one is there, else where it points."""
    (disks,) = struct.unpack_from("<I", locator, 16)
    f.seek(eocd_pos - _LOCATOR_SIZE - _EOCD64_SIZE)
    record = f.read(_EOCD64_SIZE)
    if record[:4] != _EOCD64:
        (offset,) = struct.unpack_from("<Q", locator, 8)
        if offset > file_size - _EOCD64_SIZE:
            raise ZipError("the zip64 end-of-directory record is missing", "end of file")
        f.seek(offset)
        record = f.read(_EOCD64_SIZE)
        if len(record) < _EOCD64_SIZE or record[:4] != _EOCD64:
            raise ZipError("the zip64 end-of-directory record is damaged", f"byte {offset}")
    return disks, record


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            values = list(struct.unpack_from(f"<{min(size, len(extra) - pos - 4) // 8}Q", extra, pos + 4))
            if usize == _U32 and values:
                usize = values.pop(0)
            if csize == _U32 and values:
                csize = values.pop(0)
            if offset == _U32 and values:
                offset = values.pop(0)
            break
        pos += 4 + size
    return usize, csize, offset


def file_size_of(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size
