"""A throwaway Postgres server for tests and benches, from Debian's ``postgresql-15`` package.

The cluster lives in a temporary directory, listens on 127.0.0.1 at a free port, requires a
password (scram; the password has characters that need quoting in a URL and in a keyword
DSN) and runs with ``fsync=off``. Postgres refuses to run as root: as root, its commands run as
the ``postgres`` system user (``runuser``), which owns the directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self
from urllib.parse import quote

import psycopg
from psycopg import sql

BIN = Path(os.environ.get("ARCLIGHT_PG_BIN", "/usr/lib/postgresql/15/bin"))
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"


class PostgresMissing(RuntimeError):
    """The Postgres binaries are not installed."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One Postgres cluster: ``start()``, ``stop()``, ``restart()``, ``close()`` (stop and
    delete its files)."""

    def __init__(self) -> None:
        self.password = f"pw-{secrets.token_hex(6)}%@:/ '?"
        self.port = _free_port()
        self._root: Path | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Create the cluster on the first call, then start it (waits until it accepts)."""
        for tool in ("initdb", "pg_ctl"):
            if not (BIN / tool).exists():
                raise PostgresMissing(
                    f"{BIN / tool} not found: run hack/install-deps.sh (installs postgresql)"
                )
        if self._root is None:
            self._init()
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.root / "log"),
                     "-o", f"-p {self.port}")
        return self

    def stop(self) -> None:
        """Fast shutdown (clients are disconnected); the files stay for a restart."""
        if self._root is not None and (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-w", "-t", "60", "-m", "fast")

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """Whether the server is up (its pid file exists)."""
        return self._root is not None and (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self.stop()
        finally:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- clients --------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """The superuser's URL for the ``postgres`` database."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str) -> str:
        return (f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}"
                f"@127.0.0.1:{self.port}/{dbname}")

    def create_database(self, name: str) -> str:
        """Create database ``name``; its DSN."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn_for(name)

    @property
    def log(self) -> str:
        """The server log (for failure messages)."""
        path = self.root / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- internals ------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("the server was never started")
        return self._root

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _init(self) -> None:
        root = Path(tempfile.mkdtemp(prefix="arclight-pg-"))
        self._root = root
        if os.geteuid() == 0:
            shutil.chown(root, SYSTEM_USER, SYSTEM_USER)
        pwfile = root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, SYSTEM_USER, SYSTEM_USER)
        pwfile.chmod(0o600)
        try:
            self._run(str(BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                      "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                      "--locale=C", "--no-sync")
        finally:
            pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# arclight tests\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\nshared_buffers = 128MB\n"
            )

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), *args)

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", SYSTEM_USER, "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120,
                              check=False)
        if done.returncode != 0:
            log = self.log[-3000:] if self._root is not None else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}):\n"
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}\n{log}")
