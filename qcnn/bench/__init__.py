"""The paper's speed test: :func:`run_bench` (protocol), :class:`BenchResult` / :class:`Series`
(what was measured, and its JSON schema), the peer engines, and the machine record."""

from __future__ import annotations

from ._machine import cpu_info, machine_record, package_versions, short_summary, thread_settings
from ._peers import PEERS, Peer, check_layers, make_peer, parse_peers
from ._protocol import MODES, TOLERANCE, default_backend, run_bench
from ._result import SCHEMA, BenchResult, Series

__all__ = [
    "MODES", "PEERS", "SCHEMA", "TOLERANCE", "BenchResult", "Peer", "Series", "check_layers", "cpu_info",
    "default_backend", "machine_record", "make_peer", "package_versions", "parse_peers", "run_bench",
    "short_summary", "thread_settings",
]
