"""Shared by the docker tests (marker ``docker``, run by .ci/containers.sh): skip without an
engine or the image, a compose project of their own on free ports, and the check that nothing
is left behind."""

from __future__ import annotations

import os

import pytest

from chaos.docker_cli import docker, engine_problem

IMAGE = os.environ.get("HELOGALE_IMAGE", "helogale:latest")


def require_engine_and_image() -> None:
    problem = engine_problem()
    if problem:
        pytest.skip(f"containers: {problem}")
    if not docker("image", "ls", "-q", IMAGE).strip():
        pytest.skip(f"image {IMAGE} not built: bash compose/build-images.sh")


def leftovers(project: str) -> dict[str, list[str]]:
    """Containers, networks and volumes still labelled with ``project``."""
    label = f"label=com.docker.compose.project={project}"
    found = {
        "containers": docker("ps", "-aq", "--filter", label).split(),
        "networks": docker("network", "ls", "-q", "--filter", label).split(),
        "volumes": docker("volume", "ls", "-q", "--filter", label).split(),
    }
    return {k: v for k, v in found.items() if v}
