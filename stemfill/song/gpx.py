"""Guitar Pro 6 (.gpx) containers: BCFZ decompression and the BCFS sector file system.

A ``.gpx`` file is ``BCFZ`` + int32 LE length of the decompressed data + a bit stream
(bits read most significant first). Each chunk starts with one flag bit:

* ``0``: literal: a 2-bit count (bits in reversed order, i.e. least significant bit
  first), then that many bytes of 8 bits each (most significant bit first);
* ``1``: back-reference: a 4-bit word size ``w`` (most significant first), then an
  offset and a length of ``w`` bits each (reversed); copy ``min(offset, length)``
  bytes starting ``offset`` bytes back from the end of the output.

Decompression stops when the output reaches the announced length. The output is a
``BCFS`` file system: the 4-byte magic, then sectors of ``SECTOR`` (0x1000) bytes. A
sector whose first int32 LE is 2 holds a file entry: its name (NUL-padded, at +4,
127 bytes), its size (int32 at +0x8C) and the list of its data sectors (int32 sector
indices from +0x94, ending at a 0). A directory entry (1) has the same layout; its
data sectors are skipped when scanning for entries. An uncompressed ``BCFS`` file is
read the same way, without the decompression step.

A stream that ends before the announced length (files cut short by a download or an
editor: 1 to a few bytes) raises ``BcfzCutShort``, which carries what was decoded,
zero-padded to that length. ``gpx_files(data, warnings=[...])`` reads the file system
from it and adds one line to ``warnings``; ``gpif.read_gpif`` refuses the file only if
the score it finds there is itself cut (its XML does not parse).

Checked against the ``.gpx`` files of ../shared/data/guitarpro-modern (GP6 r11686).
"""

from __future__ import annotations

import struct

SECTOR = 0x1000
NAME_AT, NAME_LEN, SIZE_AT, BLOCKS_AT = 0x04, 127, 0x8C, 0x94
ENTRY_FILE, ENTRY_DIR = 2, 1
MAX_DECOMPRESSED = 256 << 20  # refuse to inflate a (corrupt) length beyond 256 MiB


class GpxError(ValueError):
    """A .gpx container could not be decoded; the message says what is wrong."""


class BcfzCutShort(GpxError):
    """The BCFZ stream ends before its announced length; ``data`` is what it decoded, zero-padded to that length."""

    def __init__(self, message: str, data: bytes, decoded: int, expected: int):
        super().__init__(message)
        self.data, self.decoded, self.expected = data, decoded, expected


def decompress_bcfz(data: bytes) -> bytes:
    """Inflate a ``BCFZ`` stream (magic included); returns the ``BCFS`` image, magic included.

    Raises ``BcfzCutShort`` (a GpxError) if the stream ends before the announced length."""
    if data[:4] != b"BCFZ":
        raise GpxError(f"not a BCFZ stream (starts with {data[:4]!r})")
    if len(data) < 8:
        raise GpxError("BCFZ header cut short")
    expected = struct.unpack_from("<i", data, 4)[0]
    if not 0 < expected <= MAX_DECOMPRESSED:
        raise GpxError(f"BCFZ announces {expected} bytes of data")
    # The bit stream as a string of '0'/'1': slicing and int(..., 2) are far faster in
    # Python than reading bit by bit (0.4 s for the 210 kB test file).
    bits = bin(int.from_bytes(b"\x01" + data[8:], "big"))[3:]
    n_bits = len(bits)
    out = bytearray()
    pos = 0
    short = ""
    while len(out) < expected:
        if pos >= n_bits:
            short = f"BCFZ stream ends after {len(out)} of {expected} bytes"
            break
        if bits[pos] == "1":
            word = int(bits[pos + 1 : pos + 5] or "0", 2)
            offset_bits = bits[pos + 5 : pos + 5 + word]
            length_bits = bits[pos + 5 + word : pos + 5 + 2 * word]
            pos += 5 + 2 * word
            if pos > n_bits:
                short = f"BCFZ stream ends inside a back-reference after {len(out)} of {expected} bytes"
                break
            offset = int(offset_bits[::-1] or "0", 2)
            length = int(length_bits[::-1] or "0", 2)
            if offset > len(out):
                raise GpxError(f"BCFZ back-reference {offset} bytes back with only {len(out)} bytes written")
            start = len(out) - offset
            out += out[start : start + min(offset, length)]
        else:
            count = int(bits[pos + 1 : pos + 3][::-1] or "0", 2)
            pos += 3
            if count:
                chunk = bits[pos : pos + 8 * count]
                if len(chunk) < 8 * count:
                    whole = len(chunk) // 8 * 8  # the literal's bytes that are there
                    if whole:
                        out += int(chunk[:whole], 2).to_bytes(whole // 8, "big")
                    short = f"BCFZ stream ends inside a literal after {len(out)} of {expected} bytes"
                    break
                out += int(chunk, 2).to_bytes(count, "big")
                pos += 8 * count
    if short:
        decoded = len(out)
        raise BcfzCutShort(short, bytes(out) + bytes(expected - decoded), decoded, expected)
    return bytes(out[:expected])


def read_bcfs(image: bytes) -> dict[str, bytes]:
    """The files of a ``BCFS`` image (magic included): {name: content}."""
    if image[:4] != b"BCFS":
        raise GpxError(f"not a BCFS file system (starts with {image[:4]!r})")
    fs = image[4:]
    n_sectors = len(fs) // SECTOR
    files: dict[str, bytes] = {}
    data_sectors: set[int] = set()
    for index in range(1, n_sectors):  # sector 0 is the header
        if index in data_sectors:
            continue
        at = index * SECTOR
        kind = struct.unpack_from("<i", fs, at)[0]
        if kind not in (ENTRY_FILE, ENTRY_DIR):
            continue
        blocks = _blocks(fs, at, n_sectors)
        data_sectors.update(blocks)
        if kind != ENTRY_FILE:
            continue
        name = fs[at + NAME_AT : at + NAME_AT + NAME_LEN].split(b"\0", 1)[0].decode("utf-8", "replace")
        size = struct.unpack_from("<i", fs, at + SIZE_AT)[0]
        if size < 0 or size > len(blocks) * SECTOR:
            raise GpxError(f"BCFS file {name!r}: size {size} does not fit its {len(blocks)} sectors")
        files[name] = b"".join(fs[b * SECTOR : (b + 1) * SECTOR] for b in blocks)[:size]
    return files


def _blocks(fs: bytes, at: int, n_sectors: int) -> list[int]:
    """Data sector indices of the entry at ``at`` (the list ends at a 0 or at the sector's end)."""
    blocks = []
    for p in range(at + BLOCKS_AT, at + SECTOR - 3, 4):
        b = struct.unpack_from("<i", fs, p)[0]
        if b == 0:
            break
        if not 0 < b < n_sectors:
            raise GpxError(f"BCFS entry at sector {at // SECTOR} points to sector {b} of {n_sectors}")
        blocks.append(b)
    return blocks


def gpx_files(data: bytes, warnings: list[str] | None = None) -> dict[str, bytes]:
    """The files of a .gpx container (``BCFZ`` compressed or plain ``BCFS``).

    With a ``warnings`` list, a BCFZ stream cut short is read as far as it goes (the missing
    bytes as zeros) and one line on it goes to ``warnings``; without one it raises ``BcfzCutShort``.
    """
    if data[:4] == b"BCFZ":
        try:
            data = decompress_bcfz(data)
        except BcfzCutShort as e:
            if warnings is None:
                raise
            try:
                files = read_bcfs(e.data)
            except GpxError as inner:
                raise GpxError(f"{e} (and what is there: {inner})") from e
            warnings.append(cut_short_line(e))
            return files
    return read_bcfs(data)


def cut_short_line(e: BcfzCutShort) -> str:
    """The warning for a container read as far as its stream goes."""
    return (f"file cut short: its compressed data ends after {e.decoded} of the {e.expected} bytes it announces; "
            f"read what is there")
