"""Load and save a model in the authors' directory layout (``seed-format.md`` section 1).

Files are ``<dir>/<prefix>.<kind>.<NN>.<ext>``, NN = the layer's 1-based position in the
full layer list (two digits). Per conv/fc layer:

* quantized when ``ctrdLst.NN.bin`` (float32 [S, K, D]) and assignments exist
  (``asmtLst.NN.cbn``, bit-packed, 0-based; else raw ``asmtLst.NN.bin``, uint8 1-based).
  Assignments are [O, k, k, S] for conv and [O, S] for fc; the layer gets Quant(D, K);
* float otherwise, from ``convKnl.NN.bin`` [O, C/G, k, k] or ``fcntWei.NN.bin`` [O, F];
* ``biasVec.NN.bin`` [O] in both modes.

The mean image is ``imagenet_mean.single.bin`` (float32 [3, 256, 256], BGR), in the
directory or its parent. Every problem is a one-line :class:`QcnnError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .._errors import QcnnError
from ..model._model import PREPROCESS, Model, expected_params, mean_shape
from ..model._spec import Layer, NetSpec, Quant
from ..model._zoo import quantize_spec, resolve_spec
from ._seed_files import read_bin, read_cbn, read_raw_asmt, write_bin, write_cbn

__all__ = ["load_seed", "save_seed", "MEAN_FILE", "seed_file_name"]

MEAN_FILE = "imagenet_mean.single.bin"
_BIN_DIR = "Bin.Files"

PathLike = str | os.PathLike[str]


def seed_file_name(prefix: str, kind: str, index: int, ext: str = "bin") -> str:
    """``<prefix>.<kind>.<NN>.<ext>`` with NN the 1-based layer index, two digits."""
    return f"{prefix}.{kind}.{index:02d}.{ext}"


def _bin_dir(directory: PathLike) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise QcnnError("no such directory (expected the model's Bin.Files directory or its parent)", directory)
    sub = directory / _BIN_DIR
    return sub if sub.is_dir() else directory


def _prefix(spec: NetSpec, prefix: str | None, where: Path) -> str:
    prefix = prefix or spec.seed_prefix
    if not prefix:
        raise QcnnError(f"architecture {spec.name} has no seed_prefix; pass prefix=...", where)
    return prefix


class _Finder:
    """Looks a file name up in the model directory, then in each extra directory."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs

    def find(self, name: str) -> Path | None:
        for d in self.dirs:
            if (d / name).exists():
                return d / name
        return None

    def missing(self, name: str, why: str) -> QcnnError:
        searched = ", ".join(str(d) for d in self.dirs)
        return QcnnError(f"file not found: {why}; searched {searched}", self.dirs[0] / name)


def _check_shape(arr: np.ndarray, want: tuple[int, ...], path: Path, layer: Layer, what: str) -> None:
    if arr.shape != want:
        raise QcnnError(f"{what} of layer {layer.name}: shape {list(arr.shape)}, the architecture needs "
                        f"{list(want)}", path)


def _load_layer(layer: Layer, index: int, in_shape: tuple[int, ...], prefix: str,
                finder: _Finder) -> tuple[Quant | None, dict[str, np.ndarray]]:
    """The (Quant or None, tensors) of one conv/fc layer, every tensor checked against the spec."""
    name = lambda kind, ext="bin": seed_file_name(prefix, kind, index, ext)  # noqa: E731
    ctrd_path = finder.find(name("ctrdLst"))
    cbn_path = finder.find(name("asmtLst", "cbn"))
    raw_path = finder.find(name("asmtLst"))
    float_kind = "convKnl" if layer.type == "conv" else "fcntWei"
    float_path = finder.find(name(float_kind))
    tensors: dict[str, np.ndarray] = {}
    quant: Quant | None = None
    if ctrd_path is not None and (cbn_path is not None or raw_path is not None):
        codebook = read_bin(ctrd_path, np.float32)
        if codebook.ndim != 3:
            raise QcnnError(f"sub-codebooks of layer {layer.name} must be [S, K, D], got {list(codebook.shape)}",
                            ctrd_path)
        try:
            quant = Quant(int(codebook.shape[2]), int(codebook.shape[1]))
        except QcnnError as err:
            raise QcnnError(f"layer {layer.name}: {err}", ctrd_path) from None
        want = expected_params(layer.with_quant(quant), in_shape)
        _check_shape(codebook, want["codebook"][0], ctrd_path, layer, "sub-codebook list [S, K, D]")
        asmt_path = cbn_path if cbn_path is not None else raw_path
        assert asmt_path is not None
        if cbn_path is not None:
            codes, _bits = read_cbn(cbn_path)
        else:
            codes = read_raw_asmt(asmt_path)
        _check_shape(codes, want["codes"][0], asmt_path, layer, "assignments")
        top = int(codes.max())
        if top >= quant.K:
            raise QcnnError(f"assignment {top} of layer {layer.name} is out of range for K={quant.K} "
                            f"(from {ctrd_path.name})", asmt_path)
        tensors = {"codebook": codebook, "codes": codes}
    elif float_path is not None:
        weight = read_bin(float_path, np.float32)
        want = expected_params(layer.with_quant(None), in_shape)
        _check_shape(weight, want["weight"][0], float_path, layer, "weights")
        tensors = {"weight": weight}
    elif ctrd_path is not None:
        raise finder.missing(name("asmtLst", "cbn"), f"assignments of quantized layer {layer.name} "
                             f"(it has {ctrd_path.name}, and there is no raw {name('asmtLst')} either)")
    else:
        raise finder.missing(name("ctrdLst"), f"no weights for layer {layer.name} "
                             f"(neither quantized {name('ctrdLst')} + {name('asmtLst', 'cbn')} nor float "
                             f"{name(float_kind)})")
    bias_path = finder.find(name("biasVec"))
    if bias_path is None:
        raise finder.missing(name("biasVec"), f"bias of layer {layer.name}")
    bias = read_bin(bias_path, np.float32)
    _check_shape(bias, (layer.out,), bias_path, layer, "bias")
    tensors["bias"] = bias
    return quant, tensors


def _find_mean(bin_dir: Path, given: PathLike | None, spec: NetSpec) -> Path:
    if given is not None:
        return Path(given)
    for d in (bin_dir, bin_dir.parent):
        if (d / MEAN_FILE).exists():
            return d / MEAN_FILE
    raise QcnnError(f"no mean image: {MEAN_FILE} is in neither {bin_dir} nor {bin_dir.parent}, and the "
                    f"{spec.name} spec needs one (mean: image); pass mean=PATH", bin_dir / MEAN_FILE)


def load_seed(directory: PathLike, arch: str | PathLike | NetSpec = "alexnet", prefix: str | None = None, *,
              mean: PathLike | None = None, extra_dirs: Iterable[PathLike] = ()) -> Model:
    """Read a model in the authors' layout.

    ``directory`` is the ``Bin.Files`` directory or its parent; files missing there are
    looked up in each of ``extra_dirs`` in turn (e.g. the fc6 stand-in). ``arch`` is a
    built-in name, a spec file or a NetSpec (its quantization settings are ignored: each
    layer's Quant(D, K) comes from its ctrdLst shape [S, K, D]). ``prefix`` defaults to
    the spec's ``seed_prefix``. ``mean`` is the mean image path (default:
    ``imagenet_mean.single.bin`` in the directory or its parent).
    """
    bin_dir = _bin_dir(directory)
    base = resolve_spec(arch)
    prefix = _prefix(base, prefix, bin_dir)
    dirs = [bin_dir]
    for extra in extra_dirs:
        extra = Path(extra)
        if not extra.is_dir():
            raise QcnnError("no such directory (given in extra_dirs)", extra)
        dirs.append(extra)
    finder = _Finder(dirs)
    plan: dict[str, Quant | None] = {}
    params: dict[str, dict[str, np.ndarray]] = {}
    for index, (layer, in_shape) in enumerate(zip(base.layers, base.shapes()), start=1):
        if layer.has_weights:
            plan[layer.name], params[layer.name] = _load_layer(layer, index, in_shape, prefix, finder)
    spec = quantize_spec(base, plan)
    ms = mean_shape(spec)
    if ms is not None:
        mean_path = _find_mean(bin_dir, mean, spec)
        image = read_bin(mean_path, np.float32)
        if image.shape != ms:
            raise QcnnError(f"mean image has shape {list(image.shape)}, the {spec.name} preprocessing needs "
                            f"{list(ms)}", mean_path)
        params[PREPROCESS] = {"mean": image}
    return Model(spec, params, source=str(bin_dir))


def save_seed(model: Model, directory: PathLike, prefix: str | None = None) -> None:
    """Write ``model`` in the authors' layout into ``directory`` (created if needed).

    Quantized layers: ``ctrdLst.NN.bin``, ``asmtLst.NN.cbn`` (at the layer's minimal bit
    width, ceil(log2 K)); float layers: ``convKnl.NN.bin`` / ``fcntWei.NN.bin``; always
    ``biasVec.NN.bin``; and ``imagenet_mean.single.bin`` when the model has a mean image.
    Each file is written atomically. Refuses to write a float layer beside an existing
    ``ctrdLst`` of the same index, which would shadow it on loading.
    """
    directory = Path(directory)
    prefix = _prefix(model.spec, prefix, directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise QcnnError(f"cannot create directory: {err.strerror}", directory) from None
    for index, layer in enumerate(model.spec.layers, start=1):
        if not layer.has_weights:
            continue
        p = model.params[layer.name]
        name = lambda kind, ext="bin": directory / seed_file_name(prefix, kind, index, ext)  # noqa: E731
        if layer.quant is not None:
            write_bin(name("ctrdLst"), p["codebook"])
            write_cbn(name("asmtLst", "cbn"), p["codes"], layer.quant.bits)
        else:
            shadow = name("ctrdLst")
            if shadow.exists():
                raise QcnnError(f"would shadow the float weights of layer {layer.name} written beside it; "
                                "save into an empty directory", shadow)
            write_bin(name("convKnl" if layer.type == "conv" else "fcntWei"), p["weight"])
        write_bin(name("biasVec"), p["bias"])
    if model.mean is not None:
        write_bin(directory / MEAN_FILE, model.mean)
