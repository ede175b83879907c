"""The harness's exceptions: one base class, subclasses that carry what failed."""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class UsageError(HarnessError):
    """Bad input from the user: the CLI prints the message and exits with 2."""


class SetupError(HarnessError):
    """Something needed before any scenario ran is missing or broken (exit 2)."""


class TargetError(HarnessError):
    """The target could not be started, stopped or inspected."""

    def __init__(self, message: str, *, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target


class TargetNotReady(TargetError):
    """The target did not respond on ``/health`` within the start-up timeout."""


class FaultError(HarnessError):
    """A fault could not be injected, for example because its file is missing."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class ModelSetError(HarnessError):
    """The model files to test with are missing, unreadable or inconsistent."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class DockerUnavailable(SetupError):
    """No usable Docker engine: none responds, or it runs on another machine."""


class ImageBuildError(SetupError):
    """An image the harness needs could not be built, pulled or imported."""

    def __init__(self, message: str, *, image: str | None = None) -> None:
        super().__init__(message)
        self.image = image
