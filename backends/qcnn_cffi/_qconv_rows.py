"""The row-fused schedule of a quantized conv (``qc_qconv_fused``): table row rho of every
(group, subspace), [G, S, K, cs] (AlexNet: 190-520 KB), is built into a per-thread buffer just
before the look-ups that read it, so the table never goes to memory (conv1's full table is 27 MB).
With shifted-load tiles the same values and summation order as the staged schedule: bit-identical
results. With rotated tiles (:attr:`CffiConfig.fused_rotate`) every tap group is split by column
shift and each shift applied once to the group's partial sums: within float rounding.
"""

from __future__ import annotations

import numpy as np

from ._ext import lib
from ._qconv_layout import (L1_BUDGET, ConvGeometry, CPlan, FusedCall, channel_tiles, split_by_shift, tap_groups,
                            tile_offsets)
from .config import CffiConfig

__all__ = ["RowFusedConv"]


class RowFusedConv(FusedCall):
    """The fused call x [N, C, H, W] -> y [N, O, Ho, Wo] on the row-fused schedule; ``rotated``
    says which tiles run."""

    schedule = "rows"

    def __init__(self, geom: ConvGeometry, config: CffiConfig, codebook: np.ndarray, codes: np.ndarray,
                 bias: np.ndarray) -> None:
        g = self.geom = geom
        vl = g.vl
        # blocks too big for two to share L1 (conv1: 32 KB): L1 blocking is futile, so one group per
        # tap-row offset takes every block (fewest partial-sum passes; conv1 3.75 -> 3.5 ms measured;
        # one-block sets, with code_stride keeping a block's lines in distinct L1 sets: 4.0 ms)
        block = g.kk * g.wq * 4
        taps, gstart, gdu = tap_groups(g.k, g.st, g.s, block, config.fused_min_taps if 2 * block <= L1_BUDGET
                                       else 1 << 30)
        # rotated tiles: every load aligned, column shifts applied per group (see qc_qconv_fused)
        rot_r = int(lib.qc_conv_fused_rot_r())
        rot = bool(config.fused_rotate and rot_r > 0 and g.wq % vl == 0 and (g.k - 1) // g.st < vl)
        gdv = None
        if rot:
            split = split_by_shift(taps, gstart, gdu, g.st)
            rot = len(taps) >= config.fused_rotate_min_taps * (len(split[1]) - 1)  # enough taps per shift group
            if rot:
                taps, gstart, gdu, gdv = split
        r = rot_r if rot else int(lib.qc_conv_r())
        chan, tiles = channel_tiles(g.groups, g.og, r)
        tu, tv, ts = taps[:, 0], taps[:, 1], taps[:, 2]
        # offsets into one table row [G, S, K, cs] of the row buffer (rotated: no column shift)
        offs = (ts * g.rowstride + ((tu % g.st) * g.st + tv % g.st) * g.wq + (0 if rot else tv // g.st))[None] \
            + codes[:, tu, tv, ts].astype(np.int64) * g.cs  # [O, ntaps]
        row = g.groups * g.s * g.rowstride
        rowfl = row + max(0, (g.groups - 1) * g.s * g.rowstride + int(offs.max()) + g.wread - row) \
            + vl * (2 if rot else 1)
        tchunk = max(1, config.fused_acc_bytes // (r * -(-g.wo // vl) * vl * 4))
        self.plan = CPlan("qc_qconv_fused_plan", table=g.table_fields(codebook), **tiles,
                          offs=tile_offsets(offs, chan), ntaps=len(taps), ngroups=len(gstart) - 1, gstart=gstart,
                          gdu=gdu, gdv=gdv, kr=g.kr, bias_t=np.ascontiguousarray(bias[chan]), O=g.o, Ho=g.ho,
                          Wo=g.wo, tchunk=tchunk, rowfl=rowfl)
        self.rotated = rot
        self._bind(g.wq, int(lib.qc_qconv_fused_scratch(self.plan.ptr)), lib.qc_qconv_fused, "the fused table rows")
