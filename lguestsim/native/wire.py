"""The messages between the door (door.c, inside a native Launcher) and the Host.

A connection is a Unix stream socket.  A request is five little-endian
32-bit words -- op, a, b, c, len -- and ``len`` bytes; the answer is three
words -- ret (signed), errno, len -- and ``len`` bytes, with the Guest's
window of RAM riding along as a descriptor (SCM_RIGHTS) on the answer to MAP.
Every request gets exactly one answer, in order; a connection has at most
one request outstanding, so a Launcher blocked in read() simply waits for
its answer.
"""

from __future__ import annotations

import array
import socket
import struct
from dataclasses import dataclass

REQUEST = struct.Struct("<5I")
ANSWER = struct.Struct("<iII")

# The requests (door.c has the same numbers).
HELLO_MM = 1      # a: 2.6.25?  b: pid.  A new process's memory; answer: its token
JOIN_MM = 2       # a: token.  A forked child holds the same memory
OPEN = 3          # a: memory token, b: 2.6.25?  open("/dev/lguest"); answer: the file's token
JOIN_FILE = 4     # a: file token.  A forked child's copy of the file: another task
MAP = 5           # a: Launcher address, b: length.  /dev/zero mapped; answer: the
                  # offset in the window's file (sent along), and the window's size
WRITE = 6         # a: offset (the CPU), b: the write's size; data: its bytes (at most a page)
READ = 7          # a: size, b: offset (the CPU).  Runs the Guest; answer: read()'s bytes

NAMES = {HELLO_MM: "HELLO_MM", JOIN_MM: "JOIN_MM", OPEN: "OPEN", JOIN_FILE: "JOIN_FILE",
         MAP: "MAP", WRITE: "WRITE", READ: "READ"}

WRITE_MAX = 4096          # the door sends no more of a write; no request is longer
PAYLOAD_MAX = WRITE_MAX   # anything longer is a broken (or hostile) peer


@dataclass
class Request:
    """One request off the wire."""

    op: int
    a: int
    b: int
    c: int
    data: bytes


class WireError(Exception):
    """The peer sent something that is not a request: the connection is dropped."""


def parse(buf: bytearray) -> Request | None:
    """Take one whole request off the front of ``buf``, or None if it has none yet."""
    if len(buf) < REQUEST.size:
        return None
    op, a, b, c, n = REQUEST.unpack_from(buf)
    if op not in NAMES or n > PAYLOAD_MAX:
        raise WireError(f"not a door request: op {op}, {n} bytes")
    if len(buf) < REQUEST.size + n:
        return None
    data = bytes(buf[REQUEST.size:REQUEST.size + n])
    del buf[:REQUEST.size + n]
    return Request(op, a, b, c, data)


def answer(sock: socket.socket, ret: int, err: int = 0, data: bytes = b"",
           fd: int | None = None) -> None:
    """Send one answer (blocking: answers are small, and the door always reads them)."""
    msg = ANSWER.pack(ret, err, len(data)) + data
    if fd is None:
        sock.sendall(msg)
        return
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]
    sent = sock.sendmsg([msg], rights)
    if sent < len(msg):
        sock.sendall(msg[sent:])
