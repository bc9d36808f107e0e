"""Whether torch's `weights_only` unpickler can run a pickle's opcodes at all.

`torch.load(weights_only=True)` unpickles with torch/_weights_only_unpickler.py, a Python VM of
the 34 opcodes that torch.save's default protocol 2 writes. Any other opcode makes it raise
"Unsupported operand N" whatever globals the pickle names: FRAME, MEMOIZE, SHORT_BINUNICODE
and STACK_GLOBAL (which `torch.save(..., pickle_protocol=4 or 5)` writes), BINBYTES (protocol
3, for bytes), the text opcodes of protocols 0 and 1, DUP, POP, EXT1, INST, OBJ, ... Our own
unpickler is C's, which accepts them all, so the opcode stream is scanned here, by a regular
expression over the supported opcodes with their arguments (Python's loop would cost as much as
the unpickling itself).
"""

from __future__ import annotations

import pickle
import pickletools
import re
import struct
from functools import cache

# torch 2.13's weights_only unpickler: opcode → bytes of argument it reads (None: variable).
_FIXED_ARGUMENTS = {
    0: (pickle.NEWOBJ, pickle.REDUCE, pickle.BUILD, pickle.APPEND, pickle.APPENDS, pickle.SETITEM,
        pickle.SETITEMS, pickle.MARK, pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3,
        pickle.NONE, pickle.NEWFALSE, pickle.NEWTRUE, pickle.EMPTY_TUPLE, pickle.EMPTY_LIST,
        pickle.EMPTY_DICT, pickle.EMPTY_SET, pickle.BINPERSID),
    1: (pickle.BININT1, pickle.BINGET, pickle.BINPUT, pickle.PROTO),
    2: (pickle.BININT2,),
    4: (pickle.BININT, pickle.LONG_BINGET, pickle.LONG_BINPUT),
    8: (pickle.BINFLOAT,),
}
_TOKENS_PER_MATCH = 4096  # bounded repetition: no backtracking state for a whole pickle
_NAMES = {op.code.encode("latin-1")[0]: (op.name, op.proto) for op in pickletools.opcodes}


@cache
def _supported_run() -> re.Pattern[bytes]:
    """Up to _TOKENS_PER_MATCH supported opcodes with their arguments. Strings of up to 255
    bytes are spelled out by length; a longer BINUNICODE stops the match (the loop steps over it)."""
    def one_of(ops: tuple[bytes, ...]) -> bytes:
        return b"[" + b"".join(re.escape(op) for op in ops) + b"]"

    def counted(width: int) -> bytes:  # a little-endian length of `width` bytes, then that many bytes
        zeros = b"\x00" * (width - 1)
        return b"(?:" + b"|".join(re.escape(bytes([n]) + zeros) + b".{%d}" % n for n in range(256)) + b")"

    tokens = [one_of(ops) + (b".{%d}" % width if width else b"") for width, ops in _FIXED_ARGUMENTS.items()]
    tokens.append(re.escape(pickle.BINUNICODE) + counted(4))
    tokens.append(one_of((pickle.SHORT_BINSTRING, pickle.LONG1)) + counted(1))
    tokens.append(re.escape(pickle.GLOBAL) + b"[^\n]*\n[^\n]*\n")  # module and name lines, as readline reads
    return re.compile(b"(?:" + b"|".join(tokens) + b"){1,%d}" % _TOKENS_PER_MATCH, re.DOTALL)


def first_unsupported(data: bytes, pickles: int = 1) -> tuple[int, int] | None:
    """(byte offset, opcode) of the first opcode torch's weights_only unpickler refuses in the
    first `pickles` pickles of `data`, one after the other; None when it supports them all (or
    the data ends first: that is the reader's error to report)."""
    run = _supported_run().match
    position, end = 0, len(data)
    while position < end:
        found = run(data, position)
        if found is not None:
            position = found.end()
            continue
        opcode = data[position]
        if opcode == pickle.STOP[0]:
            pickles -= 1
            if not pickles:
                return None
            position += 1
            continue
        if opcode != pickle.BINUNICODE[0]:
            return position, opcode
        if position + 5 > end:
            return None
        position += 5 + struct.unpack_from("<I", data, position + 1)[0]
    return None


def weights_only_refusal(data: bytes, where: str, pickles: int = 1) -> str:
    """Why torch.load(weights_only=True) refuses these pickles before any global is judged, as one
    sentence ("" when it does not)."""
    found = first_unsupported(data, pickles)
    if found is None:
        return ""
    offset, opcode = found
    name, protocol = _NAMES.get(opcode, (f"0x{opcode:02x}", None))
    origin = f"from pickle protocol {protocol}" if protocol is not None else "not a pickle opcode"
    return (f"{where} uses the {name} opcode at byte {offset:,} ({origin}), which torch's weights_only "
            f"unpickler does not run (\"Unsupported operand {opcode}\"), whatever the file names")
