"""Building the service image: pins, the build context, its digest, the base image.

The unit tests need no engine. The tests that build or run images are skipped
when no engine responds. The first run builds the images (minutes for the base
image without a registry), and later runs find them by tag.
"""

from __future__ import annotations

import io
import re
import secrets
import tarfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import APIError, ImageNotFound

from harness.docker import RUN_LABEL, Pins, build_target_image, clean, connect
from harness.docker import base_image as base_image_module
from harness.docker import images as images_module
from harness.docker.base_image import (
    DEFAULT_BASE_IMAGE,
    FALLBACK_BASE_IMAGE,
    find_mmdebstrap,
    resolve_base_image,
)
from harness.docker.cache import cache_root
from harness.docker.images import (
    TAG_DIGITS,
    TARGET_REPOSITORY,
    ContextFile,
    context_digest,
    context_files,
    prune_images,
    service_dir,
    write_context,
)
from harness.errors import DockerUnavailable, ImageBuildError, SetupError, UsageError

OLD_PINS = Pins(scikit_learn="1.2.2", numpy="1.26.4")


# Pins


def test_pins_build_args_cover_every_dependency() -> None:
    args = OLD_PINS.build_args()

    assert args == {
        "SKLEARN_VERSION": "1.2.2",
        "NUMPY_VERSION": "1.26.4",
        "SCIPY_VERSION": "",
        "JOBLIB_VERSION": "",
        "THREADPOOLCTL_VERSION": "",
        "FASTAPI_VERSION": "",
        "UVICORN_VERSION": "",
        "PROMETHEUS_CLIENT_VERSION": "",
    }


def test_pins_requirements() -> None:
    assert OLD_PINS.requirements() == [
        "scikit-learn==1.2.2",
        "numpy==1.26.4",
        "scipy",
        "joblib",
        "threadpoolctl",
        "fastapi",
        "uvicorn",
        "prometheus-client",
    ]


def test_pins_from_host_match_installed() -> None:
    pins = Pins.from_host()

    assert pins.scikit_learn == metadata.version("scikit-learn")
    assert pins.numpy == metadata.version("numpy")
    assert pins.prometheus_client == metadata.version("prometheus-client")


def test_pins_reject_invalid_version() -> None:
    with pytest.raises(UsageError) as info:
        Pins(numpy="1.26; rm -rf /")

    assert str(info.value) == (
        "invalid version '1.26; rm -rf /' for numpy: use a release number such as 1.2.2"
    )


def test_pins_digest_depends_on_versions() -> None:
    assert OLD_PINS.digest() == Pins(scikit_learn="1.2.2", numpy="1.26.4").digest()
    assert OLD_PINS.digest() != Pins(scikit_learn="1.2.2").digest()


def test_dockerfile_declares_every_pin() -> None:
    text = (service_dir() / "Dockerfile").read_text()
    declared = set(re.findall(r"^ARG (\w+)", text, flags=re.MULTILINE))

    assert declared == {"BASE_IMAGE", *Pins().build_args()}


def test_cache_root_follows_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    assert cache_root() == tmp_path / "model-chaos"


# Build context and digest


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A package directory shaped like target_service, with files to leave out."""
    root = tmp_path / "pkg"
    (root / "loaders" / "__pycache__").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\n")
    (root / "__init__.py").write_text("")
    (root / "loaders" / "naive.py").write_text("VALUE = 1\n")
    (root / "loaders" / "__pycache__" / "naive.cpython-311.pyc").write_bytes(b"\0")
    (root / ".hidden").write_text("editor state\n")
    return root


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel bytes")
    return wheels


def test_context_files_layout(package: Path, wheelhouse: Path) -> None:
    names = [item.name for item in context_files(wheelhouse, package)]

    assert names == [
        "Dockerfile",
        "target_service/__init__.py",
        "target_service/loaders/naive.py",
        "wheels/demo-1.0-py3-none-any.whl",
    ]


def test_context_files_of_real_service(wheelhouse: Path) -> None:
    names = {item.name for item in context_files(wheelhouse)}

    assert "Dockerfile" in names
    assert "target_service/__main__.py" in names
    assert "target_service/Dockerfile" not in names
    assert not any(name.endswith(".pyc") for name in names)


def test_digest_stable_across_order(package: Path, wheelhouse: Path) -> None:
    files = context_files(wheelhouse, package)

    first = context_digest(files, {"A": "1"}, "sha256:base")
    second = context_digest(list(reversed(files)), {"A": "1"}, "sha256:base")

    assert first == second


def test_digest_follows_file_content(package: Path, wheelhouse: Path) -> None:
    before = context_digest(context_files(wheelhouse, package), {}, "sha256:base")
    (package / "loaders" / "naive.py").write_text("VALUE = 2\n")
    after = context_digest(context_files(wheelhouse, package), {}, "sha256:base")

    assert before != after


def test_digest_ignores_byte_code(package: Path, wheelhouse: Path) -> None:
    before = context_digest(context_files(wheelhouse, package), {}, "sha256:base")
    (package / "loaders" / "__pycache__" / "naive.cpython-311.pyc").write_bytes(b"1")
    after = context_digest(context_files(wheelhouse, package), {}, "sha256:base")

    assert before == after


def test_digest_follows_file_names(package: Path, wheelhouse: Path) -> None:
    before = context_digest(context_files(wheelhouse, package), {}, "sha256:base")
    (package / "loaders" / "naive.py").rename(package / "loaders" / "basic.py")
    after = context_digest(context_files(wheelhouse, package), {}, "sha256:base")

    assert before != after


def test_digest_follows_build_args_and_base(package: Path, wheelhouse: Path) -> None:
    files = context_files(wheelhouse, package)
    reference = context_digest(files, {"SKLEARN_VERSION": "1.2.2"}, "sha256:a")

    other_args = context_digest(files, {"SKLEARN_VERSION": "1.9.1"}, "sha256:a")
    other_base = context_digest(files, {"SKLEARN_VERSION": "1.2.2"}, "sha256:b")

    assert reference != other_args
    assert reference != other_base


def test_write_context_is_reproducible(
    package: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    files = context_files(wheelhouse, package)
    write_context(files, tmp_path / "one.tar")
    (package / "__init__.py").touch()
    write_context(files, tmp_path / "two.tar")

    with tarfile.open(tmp_path / "one.tar") as tar:
        members = tar.getnames()
    assert members == [item.name for item in files]
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()


# Base image choice, on a fake engine


class FakeImages:
    """The part of the SDK's image collection that resolve_base_image uses."""

    def __init__(self, present: set[str]) -> None:
        self.present = present
        self.pulled: list[str] = []

    def get(self, name: str) -> object:
        if name not in self.present:
            raise ImageNotFound(f"No such image: {name}")
        return object()

    def pull(self, repository: str, tag: str) -> None:
        self.pulled.append(f"{repository}:{tag}")
        raise APIError("no registry reachable")


class FakeClient:
    def __init__(self, present: set[str]) -> None:
        self.images = FakeImages(present)


def test_base_present_is_used() -> None:
    client: Any = FakeClient({DEFAULT_BASE_IMAGE})

    assert resolve_base_image(client) == DEFAULT_BASE_IMAGE
    assert client.images.pulled == []


def test_built_fallback_skips_the_registry() -> None:
    client: Any = FakeClient({FALLBACK_BASE_IMAGE})

    assert resolve_base_image(client) == FALLBACK_BASE_IMAGE
    assert client.images.pulled == []


def test_explicit_base_never_replaced() -> None:
    client: Any = FakeClient({FALLBACK_BASE_IMAGE})

    with pytest.raises(ImageBuildError) as info:
        resolve_base_image(client, "python:3.11-bookworm")

    message = str(info.value)
    assert message.startswith(
        "base image 'python:3.11-bookworm' is not in the engine and pulling it failed"
    )
    assert "load it with `docker load`" in message


def test_mmdebstrap_missing_for_non_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base_image_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(base_image_module.os, "geteuid", lambda: 1000)

    with pytest.raises(SetupError) as info:
        find_mmdebstrap()

    message = str(info.value)
    assert message.startswith(f"mmdebstrap is needed to build {FALLBACK_BASE_IMAGE}")
    assert "`sudo apt-get install -y mmdebstrap`" in message


# Against a real engine


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    try:
        engine = connect(timeout=30)
    except DockerUnavailable as err:
        pytest.skip(f"Docker tests need a local engine: {err}")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def image(client: docker.DockerClient) -> str:
    return build_target_image(client)


@pytest.fixture
def run_id(client: docker.DockerClient) -> Iterator[str]:
    """A run id for containers a test starts; they are removed after the test."""
    value = f"test-{secrets.token_hex(4)}"
    yield value
    clean(value, client=client)


def run_python(client: docker.DockerClient, image: str, code: str, run_id: str) -> str:
    output = client.containers.run(
        image,
        entrypoint=["python", "-c", code],
        command=[],
        labels={RUN_LABEL: run_id},
        remove=True,
    )
    return bytes(output).decode().strip()


def test_image_tag_is_context_digest(client: docker.DockerClient, image: str) -> None:
    labels = client.images.get(image).labels
    repository, _, tag = image.partition(":")

    assert repository == TARGET_REPOSITORY
    assert len(tag) == TAG_DIGITS
    assert labels["model-chaos.context"].startswith(tag)
    assert labels["model-chaos.image"] == "target"


def test_image_configuration(client: docker.DockerClient, image: str) -> None:
    config = client.images.get(image).attrs["Config"]

    assert config["User"] == "10001:10001"
    assert "/models" in config["Volumes"]
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"][:3] == ["python", "-m", "target_service"]
    assert "0.0.0.0" in config["Entrypoint"]
    assert "urllib.request" in " ".join(config["Healthcheck"]["Test"])


def test_cached_image_not_rebuilt(
    client: docker.DockerClient, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail_build(*args: object) -> None:
        raise AssertionError("the image was built again")

    monkeypatch.setattr(images_module, "_build", fail_build)

    assert build_target_image(client) == image


def test_image_has_host_versions(
    client: docker.DockerClient, image: str, run_id: str
) -> None:
    code = "import sklearn, numpy; print(sklearn.__version__, numpy.__version__)"

    versions = run_python(client, image, code, run_id)

    assert versions == f"{metadata.version('scikit-learn')} {metadata.version('numpy')}"


def test_base_image_python_and_venv(client: docker.DockerClient, run_id: str) -> None:
    base = resolve_base_image(client)
    code = (
        "import sys, venv; print(sys.version_info[:2], sys.prefix != sys.base_prefix)"
    )

    output = run_python(client, base, code, run_id)

    if base == FALLBACK_BASE_IMAGE:
        assert output == "(3, 11) True"
    else:
        assert output.startswith("(3, 11)")


def test_old_sklearn_image_builds(client: docker.DockerClient, run_id: str) -> None:
    image = build_target_image(client, OLD_PINS)
    code = "import sklearn, numpy; print(sklearn.__version__, numpy.__version__)"

    versions = run_python(client, image, code, run_id)

    assert versions == "1.2.2 1.26.4"


def test_prune_removes_only_chosen(client: docker.DockerClient, image: str) -> None:
    repository = f"model-chaos/prune-test-{secrets.token_hex(4)}"
    client.api.import_image_from_data(_tiny_rootfs(), repository=repository, tag="one")
    client.api.import_image_from_data(_tiny_rootfs(), repository=repository, tag="two")

    removed = prune_images(client, repositories=[repository])

    assert sorted(removed) == [f"{repository}:one", f"{repository}:two"]
    assert client.images.list(name=repository) == []
    assert client.images.get(image) is not None


def _tiny_rootfs() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"model-chaos prune test\n"
        info = tarfile.TarInfo("marker.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_image_build_error_reports_output(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {resolve_base_image(client)}\nRUN exit 3\n")
    files = [ContextFile("Dockerfile", dockerfile)]

    with pytest.raises(ImageBuildError) as info:
        images_module._build(client, files, "model-chaos/failing:x", {}, "digest")

    message = str(info.value)
    assert message.startswith("building model-chaos/failing:x failed: ")
    assert "returned a non-zero code: 3" in message
    assert client.images.list(name="model-chaos/failing") == []
