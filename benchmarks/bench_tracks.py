"""Tracked values (not times): the paper's cost model, file size, the measured Q-CNN/CNN
speed ratio within one process, and the peak memory of loading a model."""

from __future__ import annotations

import os
import tempfile

from .common import BACKENDS, pin_threads, require_backend

ARCHS = ["alexnet", "caffenet", "vgg_cnn_s", "vgg16", "caffenet_fgb", "caffenet_fgd"]


def _quantized_spec(arch: str):
    from qcnn import model as zoo

    spec = zoo.arch_spec(arch)
    return zoo.quantize_spec(spec, zoo.default_quant(spec))


class TrackCostModel:
    """Multiply-add speed-up and storage compression of the published D:K rule."""

    params = [ARCHS]
    param_names = ["arch"]

    def track_theoretical_speedup(self, arch: str) -> float:
        from qcnn import model as stats

        return stats.totals(stats.layer_costs(_quantized_spec(arch)))["speedup"]

    track_theoretical_speedup.unit = "x"  # type: ignore[attr-defined]

    def track_compression_ratio(self, arch: str) -> float:
        from qcnn import model as stats

        return stats.totals(stats.layer_costs(_quantized_spec(arch)))["compression"]

    track_compression_ratio.unit = "x"  # type: ignore[attr-defined]


class TrackFileSize:
    """Size of the synthetic quantized model saved as .qcnn (codes bit-packed at their width)."""

    params = [["alexnet", "caffenet"]]
    param_names = ["arch"]

    def track_qcnn_file_size(self, arch: str) -> int:
        import qcnn

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, f"{arch}.qcnn")
            qcnn.save(qcnn.model.synthetic(arch), path)
            return os.path.getsize(path)

    track_qcnn_file_size.unit = "bytes"  # type: ignore[attr-defined]


class TrackMeasuredSpeedup:
    """Float time / quantized time of AlexNet on one backend, both measured in this process
    (``qcnn.bench.run_bench``: 10 batches x 3 interleaved runs, means of the runs)."""

    params = [list(BACKENDS)]
    param_names = ["backend"]
    timeout = 900

    def setup(self, backend: str) -> None:
        require_backend(backend)
        pin_threads()

    def track_measured_speedup(self, backend: str) -> float:
        from qcnn.bench import run_bench

        result = run_bench("alexnet", backends=[backend], mode="both", batches=10, repeat=3, warmup=2,
                           check=False, progress=False)
        return result.speedups()[0]["mean"]

    track_measured_speedup.unit = "x"  # type: ignore[attr-defined]


class PeakMemLoad:
    """Peak resident memory of loading the quantized AlexNet (.qcnn, about 13 MB on disk),
    and of loading plus compiling it on the reference backend."""

    timeout = 300

    def setup_cache(self) -> str:
        import qcnn

        path = os.path.abspath("alexnet-synthetic.qcnn")
        qcnn.save(qcnn.model.synthetic("alexnet"), path)
        return path

    def peakmem_load(self, path: str) -> None:
        import qcnn

        qcnn.load(path)

    def peakmem_load_and_compile(self, path: str) -> None:
        import qcnn

        qcnn.compile(qcnn.load(path), "reference")


class TrackLookupRoofline:
    """ns per 16-float look-up add on this machine (``qcnn_cffi.roofline`` probe: table in L1 or
    L2, loads aligned or at a column shift): the bound on every quantized conv, so that results
    from different machines can be read against it."""

    params = [["L1 aligned", "L1 shifted", "L2 aligned", "L2 shifted"]]
    param_names = ["probe"]
    timeout = 300

    def setup(self, probe: str) -> None:
        require_backend("cffi")
        pin_threads()

    def track_ns_per_lookup_add(self, probe: str) -> float:
        from qcnn_cffi import roofline

        return roofline.probe_rates(runs=5, only=probe)[probe]

    track_ns_per_lookup_add.unit = "ns"  # type: ignore[attr-defined]
