"""The hardened loader: check, validate in a child process, swap, and watch for changes.

For each candidate file it counts the attempt and reads the file without
blocking. It checks the file against its manifest: the HMAC when it has a key,
then the model name, size, sha256 and scikit-learn version. It validates the
file in a child process with a timeout, and only then loads it into this
process and swaps it in. A model already served stays served when a newer file
fails. One watcher thread per model polls the
file signatures and attempts again when something changes, so the service heals
by itself once a valid file appears.
"""

from __future__ import annotations

import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import sklearn

from target_service.config import ServiceConfig, backup_path, primary_path
from target_service.failures import (
    MANIFEST_INVALID,
    SIGNATURE_INVALID,
    UPDATE_IN_PROGRESS,
    VERSION_MISMATCH,
    LoadFailure,
)
from target_service.files import Signature, read_regular_file, stat_signature
from target_service.loaders.base import Loader, dummy_served_model, utc_now
from target_service.manifest import (
    Manifest,
    ManifestError,
    manifest_path,
    parse_manifest,
    sha256_bytes,
    signature_valid,
)
from target_service.metrics import ServiceMetrics
from target_service.slots import ServedModel, Tier
from target_service.unpickle import load_model_bytes, versions_compatible
from target_service.validation import Validator
from target_service.watcher import Watcher

logger = logging.getLogger(__name__)

# Signatures of a model file and of its manifest, taken together: a change to
# either one is a new candidate.
PairSignature = tuple[Signature, Signature]


@dataclass(frozen=True)
class _Candidate:
    path: Path
    tier: Tier

    def signature(self) -> PairSignature:
        return (stat_signature(self.path), stat_signature(manifest_path(self.path)))


@dataclass
class _WatchState:
    """State that one model's watcher keeps between polls.

    ``served`` is the file and signature of the model in memory. ``rejected``
    maps each file to its signature at its last failed attempt, so that an
    unchanged bad file is not validated again. ``errors`` maps it to the reason
    it was rejected. ``retry`` contains the files found half-updated, which are
    looked at again at every poll.
    """

    served: tuple[Path, PairSignature] | None = None
    rejected: dict[Path, PairSignature] = field(default_factory=dict)
    errors: dict[Path, str] = field(default_factory=dict)
    retry: set[Path] = field(default_factory=set)

    def needs_attempt(self, path: Path, signature: PairSignature) -> bool:
        if path in self.retry:
            return True
        if self.served == (path, signature):
            return False
        return self.rejected.get(path) != signature

    def errors_of(self, *paths: Path) -> str | None:
        """Return the rejection reasons of ``paths`` as one ``last_error`` text."""
        texts = [self.errors[path] for path in paths if path in self.errors]
        return "; ".join(texts) or None


class HardenedLoader(Loader):
    name = "hardened"

    def __init__(self, config: ServiceConfig, metrics: ServiceMetrics) -> None:
        super().__init__(config, metrics)
        self._validator = Validator(config.validate_timeout, config.version_match)
        self._watch = {model: _WatchState() for model in config.models}
        self._watchers = [
            Watcher(
                config.poll_interval,
                functools.partial(self.poll_model, model),
                name=f"watch-{model}",
            )
            for model in config.models
        ]

    @property
    def integrity(self) -> str:
        return "hmac" if self.config.hmac_key is not None else "sha256"

    def start(self) -> None:
        self._validator.start()
        # Models load side by side, so that two slow validations at start-up
        # take the time of one.
        with ThreadPoolExecutor(
            max_workers=len(self.config.models), thread_name_prefix="startup-load"
        ) as pool:
            list(pool.map(self._load_at_startup, self.config.models))
        for watcher in self._watchers:
            watcher.start()

    def close(self) -> None:
        # The fork server belongs to the process, not to one loader, so the
        # service's shutdown stops it.
        for watcher in self._watchers:
            watcher.stop()

    def poll(self) -> None:
        """Run one watcher poll for every model; the watcher threads call poll_model."""
        for model in self.config.models:
            self.poll_model(model)

    def poll_model(self, model: str) -> None:
        """Attempt the files of ``model`` that changed since they were last seen."""
        primary, backup = self._candidates(model)
        tier = self.slots[model].served.tier
        if tier in (Tier.PRIMARY, Tier.LAST_KNOWN_GOOD):
            self._poll_primary(model, primary, tier)
        else:
            self._poll_chain(model, primary, backup, tier)

    def _poll_primary(self, model: str, primary: _Candidate, tier: Tier) -> None:
        # A model from the primary file is in memory: only a new primary can
        # replace it, and a bad one leaves it served.
        state = self._watch[model]
        signature = primary.signature()
        if not state.needs_attempt(primary.path, signature):
            return
        if self._attempt(model, primary, signature):
            return
        self.slots[model].set_last_error(state.errors_of(primary.path))
        if tier is Tier.PRIMARY:
            self.demote(
                model,
                Tier.LAST_KNOWN_GOOD,
                f"{primary.path.name} changed and was rejected",
            )

    def _poll_chain(
        self, model: str, primary: _Candidate, backup: _Candidate, tier: Tier
    ) -> None:
        state = self._watch[model]
        attempted = False
        for candidate in (primary, backup):
            signature = candidate.signature()
            if not state.needs_attempt(candidate.path, signature):
                continue
            attempted = True
            if self._attempt(model, candidate, signature):
                return
            if candidate is backup and tier is Tier.BACKUP:
                self.demote(
                    model,
                    Tier.LAST_KNOWN_GOOD,
                    f"{backup.path.name} changed and was rejected",
                )
        if attempted:
            self.slots[model].set_last_error(state.errors_of(primary.path, backup.path))

    def _load_at_startup(self, model: str) -> None:
        primary, backup = self._candidates(model)
        for candidate in (primary, backup):
            if self._attempt(model, candidate, candidate.signature()):
                return
        last_error = self._watch[model].errors_of(primary.path, backup.path)
        self.serve(model, dummy_served_model(), last_error)

    def _candidates(self, model: str) -> tuple[_Candidate, _Candidate]:
        model_dir = self.config.model_dir
        return (
            _Candidate(primary_path(model_dir, model), Tier.PRIMARY),
            _Candidate(backup_path(model_dir, model), Tier.BACKUP),
        )

    def _attempt(
        self, model: str, candidate: _Candidate, signature: PairSignature
    ) -> bool:
        """Load ``candidate`` and serve it; return whether it was served.

        ``signature`` is taken before the file is read. When the file changes
        while it is read, the next poll finds a signature other than the one
        recorded here and looks again.
        """
        state = self._watch[model]
        self.begin_attempt(
            model,
            candidate.path,
            candidate.tier,
            repeated=candidate.path in state.retry,
        )
        try:
            served = self._load_candidate(model, candidate)
        except LoadFailure as failure:
            # NOTE: only a half-updated file is retried at every poll. Any other
            # rejection, a validation timeout on an overloaded or paused
            # machine included, waits until the file or its manifest changes.
            state.rejected[candidate.path] = signature
            state.errors[candidate.path] = self.record_failure(
                model, candidate.path, failure
            )
            if failure.reason == UPDATE_IN_PROGRESS:
                state.retry.add(candidate.path)
            else:
                state.retry.discard(candidate.path)
            return False

        state.rejected.pop(candidate.path, None)
        state.errors.pop(candidate.path, None)
        state.retry.discard(candidate.path)
        state.served = (candidate.path, signature)
        primary, _ = self._candidates(model)
        # Served from the backup, the model reports why the primary is not.
        self.serve(model, served, state.errors_of(primary.path))
        return True

    def _load_candidate(self, model: str, candidate: _Candidate) -> ServedModel:
        data = read_regular_file(candidate.path)
        manifest = self.checked_manifest(model, candidate.path, data)
        self._validator.validate(data, manifest.canary, label=str(candidate.path))
        loaded = load_model_bytes(data, self.config.version_match)
        return ServedModel(
            model=loaded,
            tier=candidate.tier,
            version=manifest.sha256,
            source=candidate.path,
            sklearn_version=manifest.sklearn_version,
            loaded_at=utc_now(),
        )

    def checked_manifest(self, model: str, path: Path, data: bytes) -> Manifest:
        """Return the manifest of ``path`` once it admits ``data`` as ``model``.

        Checks the HMAC (with a key), the model name, the size and sha256 of
        ``data``, and the recorded scikit-learn version, in that order. Raises
        :class:`LoadFailure` naming the first check that failed.
        """
        manifest = self._read_manifest(path)
        key = self.config.hmac_key
        if key is not None and not signature_valid(manifest, key):
            if manifest.hmac is None:
                message = "manifest is not signed, and this service requires an HMAC"
            else:
                message = (
                    "manifest HMAC is invalid: signed with another key or modified"
                )
            raise LoadFailure(SIGNATURE_INVALID, message)
        if manifest.model != model:
            raise LoadFailure(
                MANIFEST_INVALID,
                f"manifest is for model {manifest.model!r}, not {model!r}",
            )

        # The publisher renames the file into place before it writes the
        # manifest, so for a moment the two disagree. A torn or in-place write
        # looks the same until it completes.
        if manifest.size != len(data):
            raise LoadFailure(
                UPDATE_IN_PROGRESS,
                f"update in progress: file has {len(data)} bytes, "
                f"manifest says {manifest.size}",
            )
        digest = sha256_bytes(data)
        if digest != manifest.sha256:
            raise LoadFailure(
                UPDATE_IN_PROGRESS,
                f"update in progress: file sha256 {digest[:12]} differs from "
                f"the manifest's {manifest.sha256[:12]}",
            )

        running = sklearn.__version__
        version_match = self.config.version_match
        if not versions_compatible(manifest.sklearn_version, running, version_match):
            raise LoadFailure(
                VERSION_MISMATCH,
                f"manifest records scikit-learn {manifest.sklearn_version}, "
                f"service runs {running} (--version-match {version_match})",
            )
        return manifest

    def _read_manifest(self, path: Path) -> Manifest:
        mpath = manifest_path(path)
        try:
            raw = read_regular_file(mpath)
        except LoadFailure as failure:
            raise LoadFailure(
                MANIFEST_INVALID, f"manifest {mpath.name}: {failure.message}"
            ) from failure
        try:
            return parse_manifest(raw, mpath)
        except ManifestError as err:
            raise LoadFailure(MANIFEST_INVALID, str(err)) from err
