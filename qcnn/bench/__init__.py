"""The paper's speed test: :func:`run_bench` (protocol), :class:`BenchResult` / :class:`Series`
(what was measured, and its JSON schema), the peer engines, and the machine record."""

from __future__ import annotations

from ._machine import cpu_info, machine_record, package_versions, short_summary, thread_settings
from ._peer_base import default_cache_dir
from ._peers import PEERS, Peer, PeerContext, check_layers, install_command, make_peer, missing_packages, parse_peers
from ._plot import plot_engines, plot_layers
from ._protocol import MODES, TOLERANCE, default_backend, run_bench
from ._result import SCHEMA, BenchResult, Series

__all__ = [
    "MODES", "PEERS", "SCHEMA", "TOLERANCE", "BenchResult", "Peer", "PeerContext", "Series", "check_layers",
    "cpu_info", "default_backend", "default_cache_dir", "install_command", "machine_record", "make_peer",
    "missing_packages", "package_versions", "parse_peers", "plot_engines", "plot_layers", "run_bench",
    "short_summary", "thread_settings",
]
