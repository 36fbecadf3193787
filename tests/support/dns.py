"""A rebinding DNS server for the stream tests: answers a name's first A query with one address
and every later one with another (TTL 0), as an attacker's DNS would to pass a check and then
send the connection elsewhere. A process reads it through a ``resolv.conf`` bind-mounted over
``/etc/resolv.conf`` in a mount namespace of its own (``unshare -m``, as root): the machine's
resolver is left alone."""

from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

A, IN = 1, 1


class RebindingDns:
    def __init__(self, folder: Path, first: str, then: str) -> None:
        if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
            pytest.fail("The DNS rebinding test runs as root, with unshare(1) (util-linux).")
        self.first, self.then = first, then
        self.queries: list[str] = []  # the names asked for (A), in order, one per lookup
        # A resolver that hears nothing in time sends the same query again (same id): that is
        # one lookup, answered the same way, not a second one.
        self._answered: dict[bytes, str] = {}
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A loopback address of its own (port 53: resolv.conf names no port).
        self.address = f"127.53.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
        self._socket.bind((self.address, 53))
        self.resolv_conf = folder / "resolv.conf"
        self.resolv_conf.write_text(f"nameserver {self.address}\noptions timeout:2 attempts:2\n")
        threading.Thread(target=self._serve, daemon=True).start()

    def command(self, *argv: str) -> list[str]:
        """``argv`` run with this server as its only DNS server."""
        mount = f"mount --bind {self.resolv_conf} /etc/resolv.conf"
        return ["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "sh", *argv]

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self._socket.recvfrom(512)
            except OSError:
                return
            ident = query[:2]
            end = 12
            while query[end]:
                end += 1 + query[end]
            question = query[12 : end + 5]
            name = ".".join(
                label.decode() for label in _labels(query[12:end])
            )  # e.g. cam.rebind.test
            kind = struct.unpack(">H", query[end + 1 : end + 3])[0]
            answers = b""
            if kind == A:
                if ident not in self._answered:
                    self.queries.append(name)
                    self._answered[ident] = self.first if len(self.queries) == 1 else self.then
                address = self._answered[ident]
                answers = b"\xc0\x0c" + struct.pack(">HHIH", A, IN, 0, 4)
                answers += socket.inet_aton(address)
            flags = 0x8180  # a response, recursion desired and available, no error
            head = ident + struct.pack(">HHHHH", flags, 1, 1 if answers else 0, 0, 0)
            self._socket.sendto(head + question + answers, peer)

    def close(self) -> None:
        self._socket.close()


def _labels(encoded: bytes) -> list[bytes]:
    labels, at = [], 0
    while at < len(encoded) and encoded[at]:
        labels.append(encoded[at + 1 : at + 1 + encoded[at]])
        at += 1 + encoded[at]
    return labels
