"""The cffi backend's tuning choices, one frozen object: ``CffiBackend(config=CffiConfig(...))``,
or the same fields as keywords (``qcnn_cffi.plugin.load(band=False)``,
``qcnn.compile(model, "cffi", options={"band": False})``).

Every default is the choice measured fastest on the development machine (AMD EPYC, AVX-512,
AlexNet batch 1); the other values stay for comparison and for other machines. The fields only
pick among schedules that compute the same sums (bit for bit, or within float rounding where a
field's note says another summation order), never the results' meaning. Build-time choices
(SIMD level, BLAS, OpenMP) are environment variables of ``_build.py`` instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from qcnn.plugin import QcnnError

__all__ = ["CffiConfig", "make_config"]


@dataclass(frozen=True)
class CffiConfig:
    """How the quantized conv runs (see ``qconv.py`` for the schedules)."""

    #: A quantized conv's call fuses its two stages: True = each table row (or, on the band path,
    #: each band table) is built right before the look-ups that read it, so the table stays in
    #: L1/L2 (AlexNet conv1's full table is 27 MB); False = the staged ``lookup(table(x))``.
    fused: bool = True

    #: Narrow stride-1 layers (output rows of one vector, AlexNet conv3-5 on AVX-512) take the band
    #: path: per subspace a band table of a few output rows (+ k - 1 input rows, within 40 KB) is
    #: built into L1 and consumed by every channel, one offset per band row. Another summation
    #: order (within float rounding of the stages). False = the row-fused path. Needs ``fused``.
    band: bool = True

    #: Band path tiles (SIMD builds, padded input rows of one vector): True = rotated tiles, every
    #: table load aligned and each column shift applied once to the partial sum of its taps (a
    #: load straddling two cache lines costs ~1.5 aligned ones here; conv3-5 measured ~20%
    #: faster); False = shifted loads (8-channel tiles).
    band_rotate: bool = True

    #: Row-fused path (AlexNet conv1, conv2), SIMD builds with rows of whole vectors: True =
    #: rotated tiles (aligned loads; every tap group split by column shift, each shift applied
    #: once to its group's partial sums by a two-vector permute) where the shift groups average
    #: at least ``fused_rotate_min_taps`` taps; False = shifted loads everywhere.
    fused_rotate: bool = True

    #: ... the taps per shift group that pay for the permutes and the smaller rotated tiles:
    #: conv1 (16 phases, ~13 taps per group) 3.5 -> 2.95 ms; conv2 (one phase, 2 taps per group)
    #: would go 2.0 -> 2.9 ms, so it keeps shifted loads. 0 rotates every layer that allows it.
    fused_rotate_min_taps: int = 6

    #: The row-fused path's tap groups have at least this many taps (each group costs a load and
    #: store of the partial sums; the table row is in L2 there, not memory, so the trade-off
    #: differs from the staged look-up's). With ``fused_acc_bytes``: conv2 2.04 -> 1.91 ms
    #: (conv1 unchanged) against the staged look-up's blocking.
    fused_min_taps: int = 10

    #: Bytes of partial sums per pass of the row-fused path over a table row: channel tiles are
    #: taken in chunks this large, so a chunk's sums and a group's table block share L1.
    fused_acc_bytes: int = 16 * 1024

    #: Layers with output rows wider than one vector: round the phase width Wq up to whole vectors
    #: (zero columns), so table rows are built without masked tails or line-splitting stores, and
    #: taps with no column shift load aligned vectors. conv2 (Wq 31 -> 32) 6% faster, conv1
    #: (57 -> 64) 1-3%; one-vector rows (conv3-5, 15 -> 16) measured 4% slower, hence not for
    #: those. False = Wq = ceil((W + 2 pad) / stride) everywhere.
    pad_width: bool = True

    #: Integer tables: output rows per band of the fused call (0 = as many as keep a unit's band
    #: table within ``_qconv_int.BAND_TABLE_BYTES``).
    int_band_rows: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise QcnnError(f"CffiConfig.{f.name} must be True or False, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise QcnnError(f"CffiConfig.{f.name} must be a non-negative integer, got {value!r}")


def make_config(config: CffiConfig | None = None, **fields: Any) -> CffiConfig:
    """``config`` (default: the defaults) with ``fields`` replaced; an unknown field or a wrong
    value is a one-line :class:`QcnnError` naming the valid fields."""
    if config is not None and not isinstance(config, CffiConfig):
        raise QcnnError(f"config must be a CffiConfig, got {type(config).__name__}")
    valid = [f.name for f in dataclasses.fields(CffiConfig)]
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        raise QcnnError(f"unknown cffi option(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return dataclasses.replace(config if config is not None else CffiConfig(), **fields)
