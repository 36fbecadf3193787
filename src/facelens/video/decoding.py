"""A bound on the size of the frames OpenCV's FFmpeg decodes: its decoders' ``max_pixels``.

OpenCV checks no frame's size after the first: a camera that sends 640x480 frames and then
15000x15000 ones gets each decoded at full size (0.34 GB each, up to 0.8 GB at the largest
FFmpeg takes, ~16,200 pixels square) and handed back at 640x480, so nothing of ours can see it.
FFmpeg itself refuses a picture over its decoder's ``max_pixels`` before allocating it, but
OpenCV passes no decoder option. So the option's default, in the option table of the
``libavcodec`` inside OpenCV's wheel, is set to the limit: every decoder this process creates
meanwhile starts with it (set around each open, when OpenCV makes its decoder, and set back
after). The table is found and checked through FFmpeg's public structures (``AVClass``,
``AVOption``) and the result read back from a new decoder context; where any of that fails,
nothing is changed and the caller is told.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

_OPTION = b"max_pixels"
_INT64 = 3  # AV_OPT_TYPE_INT64
_PROT_READ, _PROT_WRITE = 1, 2


class _AVOption(ctypes.Structure):
    """libavutil's ``AVOption`` (public, the same since FFmpeg 4)."""

    _fields_ = (
        ("name", ctypes.c_char_p),
        ("help", ctypes.c_char_p),
        ("offset", ctypes.c_int),
        ("type", ctypes.c_int),
        ("default_i64", ctypes.c_int64),  # the union default_val, as an int64
        ("min", ctypes.c_double),
        ("max", ctypes.c_double),
        ("flags", ctypes.c_int),
        ("unit", ctypes.c_char_p),
    )


class _Libraries:
    def __init__(self, avcodec: ctypes.CDLL, avutil: ctypes.CDLL) -> None:
        avcodec.avcodec_get_class.restype = ctypes.c_void_p
        avcodec.avcodec_alloc_context3.restype = ctypes.c_void_p
        avcodec.avcodec_alloc_context3.argtypes = [ctypes.c_void_p]
        avcodec.avcodec_free_context.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        avutil.av_opt_get_int.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int64),
        ]
        self.avcodec, self.avutil = avcodec, avutil
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

    def option(self) -> _AVOption | None:
        """The ``max_pixels`` entry of the decoders' option table, if it looks as expected."""
        avclass = self.avcodec.avcodec_get_class()
        # AVClass: class_name, item_name, then the option table.
        table = ctypes.c_void_p.from_address(avclass + 2 * ctypes.sizeof(ctypes.c_void_p)).value
        if not table:
            return None
        at = table
        while (entry := _AVOption.from_address(at)).name:
            if entry.name == _OPTION:
                return entry if entry.type == _INT64 and entry.min == 0 else None
            at += ctypes.sizeof(_AVOption)
        return None

    def current(self) -> int | None:
        """``max_pixels`` of a decoder context made now."""
        context = ctypes.c_void_p(self.avcodec.avcodec_alloc_context3(None))
        if not context:
            return None
        value = ctypes.c_int64()
        try:
            failed = self.avutil.av_opt_get_int(context, _OPTION, 0, ctypes.byref(value))
        finally:
            self.avcodec.avcodec_free_context(ctypes.byref(context))
        return None if failed else value.value

    def set_default(self, entry: _AVOption, value: int) -> bool:
        address = ctypes.addressof(entry)
        protection = _protection(address)
        if protection is None or not protection & _PROT_READ:
            return False
        if protection & _PROT_WRITE:
            entry.default_i64 = value
            return True
        page = address & ~(mmap.PAGESIZE - 1)
        length = address + ctypes.sizeof(_AVOption) - page
        # The table is read-only once relocated: writable for the one write, then as it was.
        if self.libc.mprotect(page, length, protection | _PROT_WRITE) != 0:
            return False
        try:
            entry.default_i64 = value
        finally:
            self.libc.mprotect(page, length, protection)
        return True


def _protection(address: int) -> int | None:
    """How the memory at ``address`` is protected (PROT_* bits), from /proc/self/maps."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        span, perms = line.split()[:2]
        start, end = (int(x, 16) for x in span.split("-"))
        if start <= address < end:
            return (_PROT_READ if perms[0] == "r" else 0) | (_PROT_WRITE if perms[1] == "w" else 0)
    return None


@cache
def _libraries() -> _Libraries | None:
    import cv2

    bundled = Path(cv2.__file__).parent.parent / "opencv_python_headless.libs"
    found = {name: sorted(bundled.glob(f"lib{name}-*.so*")) for name in ("avcodec", "avutil")}
    if not all(found.values()):
        return None
    try:
        mapped = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    if not all(str(paths[0].resolve()) in mapped for paths in found.values()):
        return None  # not the libraries cv2 runs on
    try:  # loaded by cv2 already: dlopen hands back the same ones, not second copies
        avcodec, avutil = (ctypes.CDLL(str(found[name][0])) for name in ("avcodec", "avutil"))
        return _Libraries(avcodec, avutil)
    except (OSError, AttributeError):
        return None


@contextmanager
def pixels_limited(max_pixels: int) -> Iterator[bool]:
    """While inside, the decoders FFmpeg makes in this process (OpenCV's, at an open) refuse
    pictures of more than ``max_pixels`` pixels; whether they do (False: this OpenCV's FFmpeg
    could not be bound). Their default is set back after, for encoders and other users."""
    libraries = _libraries()
    entry = None if libraries is None else libraries.option()
    if libraries is None or entry is None:
        yield False
        return
    before = entry.default_i64
    if not libraries.set_default(entry, max_pixels):
        yield False
        return
    try:
        yield libraries.current() == max_pixels
    finally:
        libraries.set_default(entry, before)
