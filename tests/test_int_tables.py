"""Integer look-up tables (``tables="int16"`` / ``"int8"``): the reference's stated semantics,
the runtime option, and the int16 accuracy contract on the real AlexNet."""

from __future__ import annotations

import numpy as np
import pytest

import qcnn
from qcnn import QcnnError
from qcnn import reference as ref
from qcnn.model import Layer, Quant
from qcnn.plugin import reference_kernel

RNG = np.random.default_rng(7)


def _conv_case():
    x = np.maximum(RNG.standard_normal((2, 10, 9, 8)), 0).astype(np.float32)
    cb = RNG.standard_normal((3, 16, 4)).astype(np.float32)  # S = 3 for Cg = 10, D = 4 (a short last subspace)
    codes = RNG.integers(0, 16, (6, 3, 3, 3)).astype(np.uint8)
    return x, cb, codes, RNG.standard_normal(6).astype(np.float32)


def test_table_sums_keep_the_stated_order():
    xs = RNG.standard_normal((5, 3, 1, 4)).astype(np.float32)
    cb = RNG.standard_normal((1, 3, 7, 4)).astype(np.float32)
    want = xs[..., 0] * cb[..., 0]
    for d in range(1, 4):
        want = want + xs[..., d] * cb[..., d]  # float32 product, then float32 sum
    got = ref.table_sums(xs, cb)
    assert got.dtype == np.float32 and np.array_equal(got, want)


@pytest.mark.parametrize("precision", ["int16", "int8"])
def test_int_table_rounding_rule(precision):
    x, cb, _, _ = _conv_case()
    table = ref.qconv_int_table(x, cb, 1, precision)
    qmax = ref.QMAX[precision]
    assert table.q.dtype == (np.int16 if precision == "int16" else np.int8)
    assert table.q.shape == (2, 1, 3, 16, 9, 8) and np.abs(table.q.astype(int)).max() <= qmax
    bound = (np.abs(x).reshape(2, -1).max(axis=1) * ref.codebook_norm(cb)).astype(np.float32)  # conv: max|x| c_max
    assert np.array_equal(table.scale, (bound / np.float32(qmax)).astype(np.float32))
    # q is the rounded float table: |q scale - T| <= scale / 2 (plus float slack)
    t = ref.qconv_table(x, cb, 1).astype(np.float64)
    err = np.abs(table.q * table.scale[:, None, None, None, None, None].astype(np.float64) - t)
    assert (err <= table.scale[:, None, None, None, None, None] * 0.5001 + 1e-6).all()


@pytest.mark.parametrize("precision", ["int16", "int8"])
def test_int_lookup_is_the_exact_integer_sum_rescaled(precision):
    x, cb, codes, bias = _conv_case()
    table = ref.qconv_int_table(x, cb, 1, precision)
    y = ref.qconv_int_lookup(table, codes, bias, stride=1, pad=1)
    # the same sums by the float look-up on the integers (exact: they stay far below 2^24)
    sums = ref.qconv_lookup(table.q.astype(np.float32), codes, np.zeros(6, np.float32), 1, 1)
    want = (sums * table.scale[:, None, None, None] + bias[None, :, None, None]).astype(np.float32)
    assert np.array_equal(y, want)
    xf, cbf = RNG.standard_normal((3, 50)).astype(np.float32), RNG.standard_normal((13, 32, 4)).astype(np.float32)
    cf = RNG.integers(0, 32, (20, 13)).astype(np.uint8)
    tf = ref.qfc_int_table(xf, cbf, precision)
    tfloat = ref.qfc_table(xf, cbf)
    assert np.allclose(tf.scale * ref.QMAX[precision], np.abs(tfloat).max(axis=(1, 2)), rtol=1e-6)  # fc: max|T|
    sums = tf.q.astype(np.int64)[:, np.arange(13)[None, :], cf].sum(axis=2)
    assert np.array_equal(ref.qfc_int_lookup(tf, cf, bias[:1].repeat(20)),
                          (sums.astype(np.float32) * tf.scale[:, None] + bias[0]).astype(np.float32))


def test_zero_input_gives_bias():
    _, cb, codes, bias = _conv_case()
    y = ref.qconv_int_lookup(ref.qconv_int_table(np.zeros((1, 10, 5, 5), np.float32), cb, 1, "int8"), codes, bias)
    assert np.array_equal(y, np.broadcast_to(bias[None, :, None, None], y.shape))


def test_reference_kernel_follows_the_layer_precision():
    x, cb, codes, bias = _conv_case()
    params = {"codebook": cb, "codes": codes, "bias": bias}
    layer = Layer("c", "conv", out=6, kernel=3, pad=1, quant=Quant(4, 16, tables="int8"))
    got = reference_kernel(layer, params)(x)
    assert np.array_equal(got, ref.qconv_int_lookup(ref.qconv_int_table(x, cb, 1, "int8"), codes, bias, 1, 1))
    assert not np.array_equal(got, reference_kernel(layer.with_quant(Quant(4, 16)), params)(x))


def test_compile_tables_option():
    model = qcnn.model.synthetic("alexnet", seed=1)
    session = qcnn.compile(model, "numpy", tables="int16")
    quantized = [layer.name for layer in model.spec.layers if layer.quant is not None]
    assert session.tables == "int16"
    assert session.fallbacks == quantized  # numpy has no integer tables yet: the reference runs them
    assert all(p.layer.quant.tables == "int16" for p in session.layers if p.layer.quant is not None)
    assert qcnn.compile(model, "numpy").fallbacks == []
    with pytest.raises(QcnnError, match="tables must be one of fp32, int16, int8"):
        qcnn.compile(model, "numpy", tables="int4")
    with pytest.raises(QcnnError, match="table precision must be one of"):
        Quant(4, 16, tables="fp16")


def test_cli_run_takes_tables(tmp_path):
    from qcnn.cli import main

    x = np.random.default_rng(0).standard_normal((3, 227, 227)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", "alexnet", str(tmp_path / "x.npy"), "--tables", "int16", "-o", str(tmp_path / "y.npz")]) == 0
    model = qcnn.model.synthetic("alexnet")
    want = qcnn.compile(model, "reference", tables="int16")(x)[0]  # one image in, one out
    got = np.load(tmp_path / "y.npz")["prob"]
    assert np.array_equal(got, want) and not np.array_equal(got, qcnn.compile(model, "reference")(x)[0])


@pytest.mark.slow  # the reference's integer kernels on 10 real images
def test_int16_accuracy_contract_on_the_seed_alexnet(seed_model, seed_dir):
    """Every quantized layer, fed the exact network's input, within 1e-3 (max|diff| / max|ref|)
    of exact tables on the 10 seed images, and the fc8 probe's top-1 unchanged on 10/10."""
    x = np.stack([qcnn.preprocess(seed_dir / "images" / f"ILSVRC2012_val_{i:08d}.BMP", seed_model)
                  for i in range(1, 11)])
    exact = qcnn.compile(seed_model, "reference").run(x)
    names = seed_model.spec.names
    for i, layer in enumerate(seed_model.spec.layers):
        if layer.quant is None:
            continue
        params = seed_model.layer_params(layer.name)
        kernel = reference_kernel(layer.with_quant(Quant(layer.quant.D, layer.quant.K, tables="int16")), params)
        y = kernel(exact[names[i - 1]] if i else x)
        assert np.abs(y - exact[layer.name]).max() <= 1e-3 * np.abs(exact[layer.name]).max(), layer.name
    session = qcnn.compile(seed_model, "reference", tables="int16")
    probe = session.run(exact["relu6"], start="fc8")["prob"]
    assert (probe.argmax(axis=1) == qcnn.compile(seed_model, "reference").run(exact["relu6"], start="fc8")["prob"]
            .argmax(axis=1)).all()


@pytest.mark.parametrize("precision", ["int16", "int8"])
def test_cffi_integer_tables_are_exact_on_the_seed_alexnet(seed_model, seed_dir, precision):
    """The cffi kernels reproduce the reference's integer sums on every quantized layer of the real
    network and images (fed the same input): equal up to the final rescale, here bit for bit; the
    fused call equals the two stages, and 1 and 2 threads give the same bits."""
    x = np.stack([qcnn.preprocess(seed_dir / "images" / f"ILSVRC2012_val_{i:08d}.BMP", seed_model)
                  for i in range(1, 4)])
    exact = qcnn.compile(seed_model, "cffi").run(x)
    names = seed_model.spec.names
    one = qcnn.compile(seed_model, "cffi", tables=precision, threads=1)
    two = qcnn.compile(seed_model, "cffi", tables=precision, threads=2)
    assert one.fallbacks == []
    try:
        for i, layer in enumerate(seed_model.spec.layers):
            if layer.quant is None:
                continue
            inp = exact[names[i - 1]] if i else x
            params = seed_model.layer_params(layer.name)
            want = reference_kernel(layer.with_quant(Quant(layer.quant.D, layer.quant.K, tables=precision)), params)(inp)
            qcnn.set_threads(1)
            got = one.run(inp, start=layer.name, stop=layer.name)[layer.name]
            kernel = one.layers[i].kernel
            staged = kernel.lookup(kernel.table(inp))
            qcnn.set_threads(2)
            got2 = two.run(inp, start=layer.name, stop=layer.name)[layer.name]
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * float(np.abs(want).max()), err_msg=layer.name)
            assert np.array_equal(got, want), f"{layer.name}: not bit-identical (the contract allows 1e-6; cffi's rescale is the reference's)"
            assert np.array_equal(got, staged), f"{layer.name}: fused and staged differ"
            assert np.array_equal(got, got2), f"{layer.name}: 1 and 2 threads differ"
    finally:
        qcnn.set_threads(1)
