"""Fault injectors: each damages a file or the target and returns a FaultEvent.

They work on the scratch model directory the target reads, never on a user's
original files, and record what they did on the timeline's clock.
"""

from harness.faults.files import (
    delete,
    flip_bits,
    garbage,
    lfs_pointer,
    replace_content,
    sweep_offsets,
    truncate,
    truncation_offsets,
    zero_page,
)
from harness.faults.format import damage_format
from harness.faults.malicious import (
    forge_manifest,
    malicious_pickle,
    write_malicious_pickle,
)
from harness.faults.process import kill, pause, restart
from harness.faults.signed import sign_damaged
from harness.faults.torn_write import TornWrite, load_attempts
from harness.faults.unreadable import clear_path, make_unreadable
from harness.faults.version import install_foreign
from harness.timeline import FaultEvent

__all__ = [
    "FaultEvent",
    "TornWrite",
    "clear_path",
    "damage_format",
    "delete",
    "flip_bits",
    "forge_manifest",
    "garbage",
    "install_foreign",
    "kill",
    "lfs_pointer",
    "load_attempts",
    "make_unreadable",
    "malicious_pickle",
    "pause",
    "replace_content",
    "restart",
    "sign_damaged",
    "sweep_offsets",
    "truncate",
    "truncation_offsets",
    "write_malicious_pickle",
    "zero_page",
]
