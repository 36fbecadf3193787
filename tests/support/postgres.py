"""A real PostgreSQL server for the tests: Debian's PostgreSQL 15, a cluster made with ``initdb``
in a temporary folder and started with ``pg_ctl`` on a free loopback port (as the ``postgres``
user when the tests run as root, which PostgreSQL refuses to run as). Password authentication
over TCP, as a deployment would have it; the superuser connects over its Unix socket."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.support.mqtt import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
USER, PASSWORD = "facelens", "s3cret-pw"


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PostgresServer:
    """One cluster, started by :meth:`start`; :meth:`database` makes an empty database owned by
    the ``facelens`` role and gives its URL."""

    def __init__(self) -> None:
        if not (BIN / "initdb").is_file():
            raise RuntimeError(
                f"The PostgreSQL tests need Debian's PostgreSQL 15 ({BIN}/initdb): install the "
                "'postgresql' package (scripts/test does as root), then re-run."
            )
        self.root = Path(tempfile.mkdtemp(prefix="facelens-pg-"))
        self.data, self.sockets = self.root / "data", self.root / "run"
        self.sockets.mkdir()
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
        subprocess.run(
            [
                *_as_owner(),
                str(BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        self.start()
        with self.admin() as db:
            db.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [
                *_as_owner(),
                str(BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-w",
                "-l",
                str(self.root / "log"),
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            [*_as_owner(), str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
            check=True,
            capture_output=True,
        )

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=str(self.sockets),
            port=self.port,
            user="postgres",
            dbname=database,
            autocommit=True,
        )

    def database(self) -> str:
        """A new, empty database owned by ``facelens``: its URL (password in it)."""
        name = f"t_{secrets.token_hex(6)}"
        with self.admin() as db:
            db.execute(f"CREATE DATABASE {name} OWNER {USER}")
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":  # for scripts/test-container: start, print URL and folder; stop
    import sys

    if sys.argv[1] == "start":
        server = PostgresServer()
        print(server.database(), server.root)
    else:
        root = Path(sys.argv[2])
        subprocess.run(
            [
                *_as_owner(),
                str(BIN / "pg_ctl"),
                "-D",
                str(root / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
