"""Quantizing float models the paper's way: product quantization by k-means (``pq``) and the
error-corrected method of Sec. 3.3 (``ec``), layer by layer and bottom-up."""

from __future__ import annotations

from ._kmeans import assign, kmeans
from ._quantize import LayerReport, QuantizeReport, check_calibration, plan, pq_layer, quantize

__all__ = ["LayerReport", "QuantizeReport", "assign", "check_calibration", "kmeans", "plan", "pq_layer", "quantize"]
