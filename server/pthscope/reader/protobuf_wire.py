"""A small protobuf wire-format reader over a file: fields of a byte range, never more bytes
than a field's header, and every length checked against the message that holds it.

`Wire.fields(start, end, where)` gives (field number, wire type, value or payload offset, payload
length) for each field; a caller descends into a sub-message by calling it on the payload's range,
reads a short string with `text`, and skips anything else (tensor bytes) by not reading it.
Messages up to 4 KiB are parsed from one slice of memory; larger ones are walked through a
64 KiB window. A budget of fields bounds the work one file can cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

_TEXT = 200


class ProtobufError(Exception):
    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


_SMALL_MESSAGE = 4096
_TOO_MANY_FIELDS = "the model has more fields than pthscope reads (a limit on the work one file may cause)"


def _parse(buf: bytes, base: int, where: str) -> list[tuple[int, int, int, int]]:
    """Every field of a message held in `buf` (which starts at file offset `base`)."""
    out = []
    pos, end = 0, len(buf)
    while pos < end:
        byte = buf[pos]
        if byte < 0x80:
            tag, pos = byte, pos + 1
        else:
            tag, pos = _slow_varint(buf, pos, base, where)
        number, wire = tag >> 3, tag & 7
        if wire == 0 or wire == 2:
            byte = buf[pos] if pos < end else 0x80
            if byte < 0x80:
                value, pos = byte, pos + 1
            else:
                value, pos = _slow_varint(buf, pos, base, where)
            if wire == 0:
                if number == 0:
                    raise ProtobufError(f"field number 0 at byte {base + pos:,}: not protobuf", where)
                out.append((number, 0, value, 0))
                continue
            length = value
        else:
            length = _fixed_size(number, wire, base + pos, where)
        _check(number, base + pos, length, base + end, where)
        out.append((number, wire, base + pos, length))
        pos += length
    return out


def _slow_varint(buf: bytes, pos: int, base: int, where: str) -> tuple[int, int]:
    value = shift = 0
    for i in range(pos, min(pos + 10, len(buf))):
        value |= (buf[i] & 0x7F) << shift
        if buf[i] < 0x80:
            return value, i + 1
        shift += 7
    raise ProtobufError(f"a varint at byte {base + pos:,} runs past its message", where)


def _fixed_size(number: int, wire: int, pos: int, where: str) -> int:
    if wire == 1:
        return 8
    if wire == 5:
        return 4
    raise ProtobufError(f"field {number} at byte {pos:,} has wire type {wire}, which ONNX never writes", where)


def _check(number: int, pos: int, length: int, end: int, where: str) -> None:
    if number == 0:
        raise ProtobufError(f"field number 0 at byte {pos:,}: not protobuf", where)
    if length > end - pos:
        raise ProtobufError(f"field {number} at byte {pos:,} claims {length:,} bytes, but its message has only "
                            f"{end - pos:,} left (the file is truncated or corrupt)", where)


class Wire:
    """Protobuf fields read from a region of the file, through a small window."""

    def __init__(self, f: BinaryIO, size: int, budget: int):
        self.f, self.size, self.budget = f, size, budget
        self.window, self.window_start = b"", 0

    def bytes_at(self, pos: int, n: int) -> bytes:
        end = self.window_start + len(self.window)
        if not (self.window_start <= pos and pos + n <= end):
            self.f.seek(pos)
            self.window, self.window_start = self.f.read(max(n, 1 << 16)), pos
        return self.window[pos - self.window_start:pos - self.window_start + n]

    def varint(self, pos: int, end: int, where: str) -> tuple[int, int]:
        at = pos - self.window_start
        window = self.window
        if 0 <= at < len(window) and pos < end and window[at] < 0x80:  # most varints are one byte
            return window[at], pos + 1
        if at < 0 or at + 10 > len(window) and self.window_start + len(window) < self.size:
            self.bytes_at(pos, 10)
            window, at = self.window, 0
        value = shift = 0
        for i in range(min(10, end - pos)):
            byte = window[at + i] if at + i < len(window) else 0x80
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value, pos + i + 1
            shift += 7
        raise ProtobufError(f"a varint at byte {pos:,} runs past its message", where)

    def fields(self, start: int, end: int, where: str) -> Iterable[tuple[int, int, int, int]]:
        """(field number, wire type, value — or for wire type 2 the payload's offset —, payload length)."""
        if end - start > _SMALL_MESSAGE:
            return self._streamed_fields(start, end, where)
        data = self.bytes_at(start, end - start)  # nodes, value infos, small tensors: parsed from one slice
        if len(data) < end - start:
            raise ProtobufError(f"the file ends inside a message at byte {start:,} (it is truncated)", where)
        found = _parse(data, start, where)
        self.budget -= len(found)
        if self.budget < 0:
            raise ProtobufError(_TOO_MANY_FIELDS, where)
        return found

    def _streamed_fields(self, start: int, end: int, where: str) -> Iterator[tuple[int, int, int, int]]:
        pos = start
        varint = self.varint
        while pos < end:
            self.budget -= 1
            if self.budget < 0:
                raise ProtobufError(_TOO_MANY_FIELDS, where)
            tag, pos = varint(pos, end, where)
            number, wire = tag >> 3, tag & 7
            if wire == 0:
                value, pos = varint(pos, end, where)
                length = 0
            elif wire == 2:
                length, pos = varint(pos, end, where)
                value = pos
            else:
                length = _fixed_size(number, wire, pos, where)
                value = pos
            _check(number, pos, length, end, where)
            yield number, wire, value, length
            pos += length

    def text(self, pos: int, length: int) -> str:
        shown = self.bytes_at(pos, min(length, _TEXT)).decode("utf-8", "replace")
        return shown if length <= _TEXT else shown + "…"
