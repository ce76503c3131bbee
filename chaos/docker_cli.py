"""The Docker and Compose command lines, as the container chaos backend and the docker tests
use them: ``docker ...`` and ``docker-compose ...`` (Debian's 1.29) or ``docker compose ...``
(v2), whichever is installed, with a timeout and the output captured."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence

ROOT_TIMEOUT_S = 120.0


class DockerError(RuntimeError):
    """A docker command failed (its stderr is in the message)."""


def engine_problem() -> str | None:
    """Why no Docker engine can be used here (None: one answers)."""
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer in 20 s"
    if done.returncode != 0:
        return "no Docker engine answers: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    if compose_command() is None:
        return "neither docker-compose nor the docker compose plugin is installed"
    return None


def compose_command() -> list[str] | None:
    """``["docker-compose"]`` or ``["docker", "compose"]`` (None: neither works)."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        done = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20)
        if done.returncode == 0:
            return ["docker", "compose"]
    return None


def docker(*args: str, timeout: float = ROOT_TIMEOUT_S, check: bool = True) -> str:
    """Run ``docker ARGS``; its stdout (DockerError when it fails and ``check``)."""
    return _run(["docker", *args], timeout=timeout, check=check)


def compose(project: str, files: Sequence[str], *args: str, env: Mapping[str, str] | None = None,
            timeout: float = 300.0, check: bool = True) -> str:
    """Run ``docker-compose -p PROJECT -f FILE... ARGS``."""
    cmd = compose_command()
    if cmd is None:
        raise DockerError("neither docker-compose nor the docker compose plugin is installed")
    argv = [*cmd, "-p", project]
    for f in files:
        argv += ["-f", f]
    return _run([*argv, *args], timeout=timeout, check=check, env=env)


def _run(argv: list[str], *, timeout: float, check: bool,
         env: Mapping[str, str] | None = None) -> str:
    import os

    full_env = None if env is None else {**os.environ, **env}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=full_env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"{' '.join(argv[:4])}... timed out after {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        raise DockerError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout
