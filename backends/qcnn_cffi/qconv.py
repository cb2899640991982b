"""Quantized conv on the C kernels, staged as the paper's table building and look-up.

Table: the input is zero-padded and split into st x st stride phases, xq [N, C, Hq, P, Wq]
(P = st^2, Hq = ceil((H + 2p) / st)); then per (sample, group g, subspace s, row i) one small GEMM
(explicit SIMD FMAs) gives
    T[n, g, s, i] [K, P Wq] = codebook[s][:, :dv] @ xq[n, g Cg + s D : g Cg + s D + dv, i],
with dv = min(D, Cg - s D), so T is [N, G, S, Hq, K, P, Wq] (a code's P Wq values are followed by
a cache line of zeros when P Wq is a multiple of 1 KB, see :func:`code_stride`). Look-up:
    y[n, o, i, j] = b[o] + sum_{u, v, s} T[n, g, s, i + u // st, A[o,u,v,s], phase(u, v), j + v // st],
phase(u, v) = (u % st) st + v % st, as contiguous vector adds along j (see ``csrc/qc_qconv.c``).
(Layers with output rows wider than a vector pad Wq to whole vectors, see
:attr:`CffiConfig.pad_width`.)

The kernel is a ``StagedKernel(table, lookup, fused=...)``: ``table``/``lookup`` are the two stages
above (``_qconv_staged.py``, for stage timing), and its call runs one fused schedule, chosen by the
backend's :class:`~qcnn_cffi.config.CffiConfig`:

* row-fused (``_qconv_rows.py``, ``qc_qconv_fused``): each table row of all groups and subspaces
  is built right before the look-ups that read it; bit-identical to the stages with shifted-load
  tiles, within float rounding with rotated ones;
* band (``_qconv_band.py``, ``qc_qconv_band``): narrow stride-1 layers (Wo <= one vector,
  AlexNet conv3-5), per subspace a band table in L1; within float rounding of the stages;
* none (``fused=False``): the call is ``lookup(table(x))``.

Only the plan of the schedule that runs is built at prepare; the staged plan on first use.

Integer tables (``layer.quant.tables`` "int16" or "int8") run ``_qconv_int.py`` instead: band
tables of int16 entries, exact integer sums, bit-identical to the reference.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from qcnn.plugin import Layer, StagedKernel

from ._qconv_band import BandConv
from ._qconv_int import IntConv
from ._qconv_layout import ConvGeometry, code_stride, quant_tensors
from ._qconv_rows import RowFusedConv
from ._qconv_staged import ConvTable, StagedConv
from .config import CffiConfig

__all__ = ["ConvTable", "code_stride", "qconv"]


def qconv(layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...], out_shape: tuple[int, ...],
          config: CffiConfig | None = None) -> StagedKernel:
    """A staged kernel x [N, C, H, W] -> y [N, O, Ho, Wo] for a product-quantized conv; ``config``
    (default: the defaults) picks the fused schedule."""
    config = config if config is not None else CffiConfig()
    assert layer.quant is not None
    if layer.quant.tables != "fp32":
        geom = ConvGeometry.of(layer, in_shape, out_shape, False)
        conv = IntConv(layer.name, geom, *quant_tensors(layer, params, geom), layer.quant.tables, config.int_band_rows)
        return StagedKernel(table=conv.table, lookup=conv.lookup, fused=conv)
    geom = ConvGeometry.of(layer, in_shape, out_shape, config.pad_width)
    tensors = quant_tensors(layer, params, geom)
    staged = StagedConv(geom, *tensors)
    fused: BandConv | RowFusedConv | None = None
    if config.fused and config.band and geom.st == 1 and geom.wo <= geom.vl:
        fused = BandConv(geom, config, *tensors)
    elif config.fused:
        fused = RowFusedConv(geom, config, *tensors)
    return StagedKernel(table=staged.table, lookup=staged.lookup, fused=fused)
