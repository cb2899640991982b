"""The numba backend's tunables: one frozen dataclass, given to ``NumbaBackend`` (or as its keywords).

``NumbaBackend(config=NumbaConfig(band_rotate=False))``, ``NumbaBackend(band_rotate=False)`` and
``qcnn.compile(model, "numba", options={"band_rotate": False})`` all make the same backend. The
defaults are the fastest measured schedules; the alternatives stay for the layers the defaults
do not apply to, and for the tests that compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from qcnn.plugin import QcnnError

__all__ = ["NumbaConfig"]


@dataclass(frozen=True)
class NumbaConfig:
    """How the numba backend schedules its quantized convolutions.

    ``band_rotate``: on the narrow stride-1 band path (a padded input row fits one 16-float
    vector, e.g. AlexNet conv3-5), kernels up to 5 x 5 load aligned table vectors and apply
    each column shift once per tap group by a lane rotation (``simd.channels_rot``; conv3-5
    3.68 -> 3.2 ms measured). Another summation order than the staged ``table``/``lookup``,
    within float rounding. False: shifted loads, the stages' order bit for bit (larger
    kernels always take this).

    ``grid_rotate``: the other quantized convs (stride phases whose tap grids are at most
    5 x 5, e.g. AlexNet conv1, conv2) pad rows to whole vectors so every window start is
    aligned and apply each column shift by two-vector shuffles of its taps' partial sums
    (``simd.grid_rot``). Bit-identical to the stages either way. False: shifted loads (larger
    grids always take this).

    ``band_rows``: at most this many output rows per band of the band path (fewer when the
    threads need more bands). One band per image at 1 thread: the codes' offsets are then
    streamed once (in a whole-network pass they are cold; smaller bands measured no faster
    even warm).
    """

    band_rotate: bool = True
    grid_rotate: bool = True
    band_rows: int = 16

    def __post_init__(self) -> None:
        for name in ("band_rotate", "grid_rotate"):
            if not isinstance(getattr(self, name), bool):
                raise QcnnError(f"NumbaConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.band_rows, bool) or not isinstance(self.band_rows, int) or self.band_rows < 1:
            raise QcnnError(f"NumbaConfig.band_rows must be an int >= 1, got {self.band_rows!r}")

    @classmethod
    def from_options(cls, config: NumbaConfig | None = None, **options: Any) -> NumbaConfig:
        """``config`` (default: the defaults) with the fields in ``options`` replaced; an unknown
        name is a one-line :class:`QcnnError` listing the valid fields."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise QcnnError(f"unknown numba option(s) {', '.join(unknown)}; valid fields: {', '.join(valid)}")
        if config is not None and not isinstance(config, cls):
            raise QcnnError(f"numba config must be a NumbaConfig, got {type(config).__name__}")
        base = config if config is not None else cls()
        return cls(**{**{name: getattr(base, name) for name in valid}, **options})
