"""A tune whose study lives on a PostgreSQL server (what several machines share), started by
the test from Debian's `postgresql` package; the password never reaches a file or the output."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

BIN = Path("/usr/lib/postgresql/15/bin")
ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "tune-s3cret-pw"


def _why_not() -> str | None:
    if not (BIN / "initdb").exists():
        return "no PostgreSQL server here (Debian: apt install postgresql)"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or subprocess.run(
            ["id", "postgres"], capture_output=True).returncode != 0):
        return "running as root without a postgres user to start the server as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "no psycopg, the PostgreSQL driver (pip install -e '.[dev]')"
    return None


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture
def postgres(tmp_path):
    why = _why_not()
    if why:
        pytest.skip(why)
    home = Path(f"/tmp/steadygan-pg-{os.getpid()}")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o700)
    (home / "pw").write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(home / "pw", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(_as_postgres([str(BIN / "initdb"), "-D", str(home / "data"), "-U", "tuner", "--pwfile",
                                 str(home / "pw"), "--auth=scram-sha-256"]), check=True, capture_output=True)
    subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(home / "data"), "-l", str(home / "log"), "-w",
                                 "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql://tuner@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(home / "data"), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_a_study_on_postgresql_and_its_password_kept_out_of_every_file(tmp_path, postgres, lenient_steadygan):
    space = tmp_path / "space.yaml"
    space.write_text("methods: {baseline: {}, r1: {gamma: [0.1]}}\n")
    out = tmp_path / "out"
    args = [*lenient_steadygan, "tune", "-c", str(ROOT / "configs" / "ring8.yaml"), "--space",
            str(space), "--steps", "20", "--sampler", "grid", "--pruner", "none", "--finalists", "1", "--seeds", "1",
            "--storage", postgres, "-o", str(out), "--set", "data.toy_samples=1000", "model.width=16",
            "model.depth=2"]
    env = {**os.environ, "STEADYGAN_TUNE_DB_PASSWORD": PASSWORD, "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "best config:" in done.stdout and time.monotonic() - started < 300
    assert PASSWORD not in done.stdout + done.stderr
    assert not (out / "study.db").exists()  # the study is on the server
    for path in out.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    wrong = subprocess.run(args, capture_output=True, text=True, timeout=120,
                           env={**env, "STEADYGAN_TUNE_DB_PASSWORD": "not-it"})
    assert wrong.returncode == 2 and "cannot open the study at postgresql+psycopg://tuner:***@127.0.0.1" in wrong.stderr
    assert "password authentication failed" in wrong.stderr
    assert "not-it" not in wrong.stderr
