"""The band schedule of a narrow stride-1 quantized conv (Wo <= one vector, AlexNet conv3-5 on
AVX-512; ``qc_qconv_band``): per subspace, the table of a band of output rows is built into L1
and every channel adds its taps with one offset per band row. Another summation order than the
stages': within float rounding. Tiles: rotated (:attr:`CffiConfig.band_rotate`, padded rows of one
vector) or shifted loads.
"""

from __future__ import annotations

import numpy as np

from ._checks import int32_dims
from ._ext import lib
from ._qconv_layout import ConvGeometry, CPlan, FusedCall, channel_tiles
from .config import CffiConfig

__all__ = ["BAND_BYTES", "BAND_ROWS", "ROT_ROWS", "BandConv"]

#: A band table: BAND_ROWS output rows (+ k - 1 input rows) at most, within BAND_BYTES (L1).
BAND_BYTES = 40 * 1024
BAND_ROWS = 4
ROT_ROWS = 3  # rows per rotated tile (qc_qconv_band's VROT)


class BandConv(FusedCall):
    """The fused call x [N, C, H, W] -> y [N, O, Ho, Wo] on the band schedule, with rotated register
    tiles of ``qc_conv_band_rot_r()`` channels or else tiles of ``qc_conv_band_r()`` channels with
    shifted loads (``rotated`` says which)."""

    schedule = "band"

    def __init__(self, geom: ConvGeometry, config: CffiConfig, codebook: np.ndarray, codes: np.ndarray,
                 bias: np.ndarray) -> None:
        g = self.geom = geom
        k, vl, wq = g.k, g.vl, g.wq_raw
        rot = int(config.band_rotate and wq <= vl and lib.qc_conv_band_rot_r() > 0)
        r = int(lib.qc_conv_band_rot_r()) if rot else int(lib.qc_conv_band_r())
        chan, tiles = channel_tiles(g.groups, g.og, r)
        wp = -(-wq // vl) * vl
        bo = max(1, min(BAND_ROWS, int(lib.qc_conv_width()) // vl, BAND_BYTES // (g.kk * wp * 4) - (k - 1), g.ho))
        if rot:
            bo = min(bo, ROT_ROWS)
        br = bo + k - 1
        # offs [G, S, tiles per group, k*k, R] (read in that order): code * BR * WP + u * WP (+ v unless
        # rotated); taps row-major, or v-major when rotated (tiles are group-major, the same number per group)
        t = np.arange(k * k)
        v, u = (t // k, t % k) if rot else (t % k, t // k)
        taps = codes[:, u, v, :].transpose(0, 2, 1)  # [O, S, k*k] in tap order
        off = taps.astype(np.int64) * (br * wp) + (u * wp + (0 if rot else v))[None, None]
        tpg = len(chan) // g.groups
        per_tile = off[chan].reshape(g.groups, tpg, r, g.s, k * k)  # [G, tiles of g, R, S, k*k]
        offs = np.ascontiguousarray(per_tile.transpose(0, 3, 1, 4, 2)).astype(np.int32)
        int32_dims(g.name, band_table=g.kk * br * wp + 2 * vl, band_offsets=offs.size)
        self.plan = CPlan("qc_qconv_band_plan", C=g.c, G=g.groups, Hq=g.hq, Wq=wq, cb=codebook, S=g.s, K=g.kk, D=g.d,
                          **tiles, offs=offs, tps=k * k, bias_t=np.ascontiguousarray(bias[chan]), O=g.o, Ho=g.ho,
                          Wo=g.wo, Bo=bo, BR=br, WP=wp, k=k, rot=rot)
        self.rotated = bool(rot)
        self._bind(wq, int(lib.qc_qconv_band_scratch(self.plan.ptr)), lib.qc_qconv_band, "the band tables")
