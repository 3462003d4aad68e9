"""What audio containers declare about themselves: the signature their extension promises, and the
length their header states, so that damaged files are refused instead of decoded into noise or
silently padded (random bytes named ``.au`` read by libsndfile as headerless 8-kHz u-law; a truncated
WAV or AU whose frame count libsndfile clamps to what is left).

Formats: docs/datasets.md. Header layouts: WAV (RIFF ``fmt ``/``data`` chunks), AU (Sun ``.snd``, big
endian: data size at byte 8, encoding at 12, channels at 20), FLAC (STREAMINFO's 36-bit total samples),
Ogg (a complete stream's last page has the end-of-stream flag), MP3 (a Xing/Info or VBRI header gives
the frame count, which libsndfile's mpg123 reports as ``info.frames``).
"""
from __future__ import annotations

import os
from pathlib import Path

import soundfile as sf

from genre.runtime.errors import AudioDecodeError

HEAD_BYTES = 65536   # read once per file: signatures and headers are all within it
# What each extension's container starts with: a file without it is not what its name says (random
# bytes named .au would otherwise be read by libsndfile as headerless 8-kHz u-law noise).
SIGNATURES = {".wav": (b"RIFF", b"RIFX", b"RF64"), ".au": (b".snd",), ".flac": (b"fLaC",), ".ogg": (b"OggS",),
              ".mp3": (b"ID3",)}
# A decoded file shorter than its header declares by more than this is truncated (MP3 encoders pad a
# frame or two; nothing real is missing below this).
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_SHARE = 0.02


def check_signature(path: Path, head: bytes) -> None:
    """Refuse a file whose first bytes are not the signature of the format its extension names."""
    suffix = path.suffix.lower()
    expected = SIGNATURES.get(suffix)
    if expected is None:
        return
    mp3_frame_sync = suffix == ".mp3" and len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    if not head.startswith(expected) and not mp3_frame_sync:
        shown = " or ".join(repr(s.decode()) for s in expected) + (" or an MPEG frame" if suffix == ".mp3" else "")
        raise AudioDecodeError(path, f"unreadable: not a {suffix[1:].upper()} file, it does not start with {shown} "
                                     f"(it starts with {shown_bytes(head[:4])}); the file is damaged or misnamed")


def shown_bytes(data: bytes) -> str:
    """A file's first bytes as a person reads them: the text they spell when printable ("hell"), else hex
    (ff fb 90 00), never a Python bytes repr."""
    if data and all(32 <= b < 127 for b in data):
        return f'"{data.decode()}"'
    return " ".join(f"{b:02x}" for b in data) or "nothing"


def declared_frames(path: Path, head: bytes) -> int | None:
    """Frames per channel the container's header declares, where it declares them (WAV, AU, FLAC, MP3
    with a Xing/Info or VBRI header), else ``None``. ``head`` is the file's first 64 KiB."""
    suffix = path.suffix.lower()
    if suffix == ".wav" and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        position, block_align = 12, None
        while position + 8 <= len(head):
            chunk, size = head[position:position + 4], int.from_bytes(head[position + 4:position + 8], "little")
            if chunk == b"fmt ":
                block_align = int.from_bytes(head[position + 20:position + 22], "little")
            elif chunk == b"data":
                unknown = size in (0, 0xFFFFFFFF) or not block_align
                return None if unknown else size // block_align
            position += 8 + size + (size & 1)
        return None
    if suffix == ".au" and head[:4] == b".snd" and len(head) >= 24:
        size, encoding, channels = (int.from_bytes(head[i:i + 4], "big") for i in (8, 12, 20))
        sample_bytes = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}.get(encoding)
        if size == 0xFFFFFFFF or not sample_bytes or not channels:
            return None
        return size // (sample_bytes * channels)
    if suffix == ".flac" and head[:4] == b"fLaC" and len(head) >= 42:
        streaminfo = head[8:42]
        total = ((streaminfo[13] & 0x0F) << 32) | int.from_bytes(streaminfo[14:18], "big")
        return total or None
    if suffix == ".mp3" and _has_frame_count_header(head):
        return sf.info(os.fsencode(path)).frames   # mpg123 reads the frame count from that header
    return None


def _has_frame_count_header(head: bytes) -> bool:
    """Whether an MP3's first frame (after its ID3v2 tag) is a Xing/Info or VBRI header. Only there:
    the same letters elsewhere (an ID3 comment) say nothing, and without the header mpg123's length is
    an estimate from the file size. A tag larger than ``head`` (big cover art) leaves the check out."""
    start = 0
    if head[:3] == b"ID3" and len(head) >= 10:   # ID3v2: a 10-byte header, its size a syncsafe integer
        size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        start = 10 + size + (10 if head[5] & 0x10 else 0)
    frame = head[start:start + 64]
    if len(frame) < 40 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return False
    return any(tag in frame[4:40] for tag in (b"Xing", b"Info", b"VBRI"))


def ogg_is_complete(path: Path) -> bool:
    """A complete Ogg stream ends with a whole page that carries the end-of-stream flag; a truncated
    file has lost that page or part of it."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 65536))
        tail = f.read()
    last = tail.rfind(b"OggS")
    if last < 0 or len(tail) < last + 27:
        return False
    header_type, n_segments = tail[last + 5], tail[last + 26]
    body = sum(tail[last + 27:last + 27 + n_segments])
    return bool(header_type & 0x04) and len(tail) >= last + 27 + n_segments + body


def check_complete(path: Path, head: bytes, decoded_frames: int, native_rate: int) -> None:
    """Refuse a file whose decoded audio is markedly shorter than its container declares."""
    if path.suffix.lower() == ".ogg" and not ogg_is_complete(path):
        raise AudioDecodeError(path, "truncated: the Ogg stream ends without its end-of-stream page")
    declared = declared_frames(path, head)
    if declared is None:
        return
    missing = declared - decoded_frames
    if missing > max(TRUNCATION_TOLERANCE_S * native_rate, TRUNCATION_TOLERANCE_SHARE * declared):
        raise AudioDecodeError(path, f"truncated: {decoded_frames / native_rate:.2f} s of audio where its header "
                                     f"declares {declared / native_rate:.2f} s")
