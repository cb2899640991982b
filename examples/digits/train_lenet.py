"""Train the small LeNet-style float network on scikit-learn's digits and save it as
``lenet_digits.qcnn`` (the float model that ``qcnn quantize`` examples and tests start from).

    pip install -e ".[train]"          # torch + scikit-learn
    python examples/digits/train_lenet.py [-o examples/digits/lenet_digits.qcnn]

Architecture (input [1, 8, 8], pixel counts / 16):
conv1 3x3 pad 1, 16 ch -> relu -> pool 2/2 -> conv2 3x3 pad 1, 32 ch -> relu -> pool 2/2
-> fc1 128 -> 64 -> relu -> fc2 64 -> 10 -> softmax.
Training: Adam (lr 3e-3, weight decay 1e-4), 60 epochs, batch 32, torch.manual_seed(0), one
thread. After training the weights are run through qcnn's reference kernels and must give
the same logits as torch (max rel. diff < 1e-4) before the file is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from digits_data import load_split  # noqa: E402

import qcnn  # noqa: E402
from qcnn.model import parse_spec  # noqa: E402

SPEC = {
    "name": "lenet_digits",
    "input": [1, 8, 8],
    "layers": [
        {"name": "conv1", "type": "conv", "out": 16, "kernel": 3, "pad": 1},
        {"name": "relu1", "type": "relu"},
        {"name": "pool1", "type": "pool", "kernel": 2, "stride": 2},
        {"name": "conv2", "type": "conv", "out": 32, "kernel": 3, "pad": 1},
        {"name": "relu2", "type": "relu"},
        {"name": "pool2", "type": "pool", "kernel": 2, "stride": 2},
        {"name": "fc1", "type": "fc", "out": 64},
        {"name": "relu3", "type": "relu"},
        {"name": "fc2", "type": "fc", "out": 10},
        {"name": "prob", "type": "softmax"},
    ],
}


def build_torch():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def train(epochs: int = 60, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    x_tr, y_tr, x_te, y_te = load_split()
    net = build_torch()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt), generator=gen).split(32):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        sched.step()
    net.eval()
    return net, (x_tr, y_tr, x_te, y_te)


def to_model(net) -> qcnn.Model:
    convs = [m for m in net if m.__class__.__name__ == "Conv2d"]
    fcs = [m for m in net if m.__class__.__name__ == "Linear"]
    params = {}
    for name, m in zip(["conv1", "conv2", "fc1", "fc2"], convs + fcs):
        params[name] = {"weight": m.weight.detach().numpy().astype(np.float32).copy(),
                        "bias": m.bias.detach().numpy().astype(np.float32).copy()}
    return qcnn.Model(parse_spec(SPEC, "lenet_digits"), params)


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(HERE / "lenet_digits.qcnn"))
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    net, (x_tr, y_tr, x_te, y_te) = train(args.epochs, args.seed)
    model = to_model(net)
    with torch.no_grad():
        logits_torch = net(torch.from_numpy(x_te)).numpy()
    logits = qcnn.compile(model).run(x_te, outputs=["fc2"])["fc2"]
    diff = float(np.abs(logits - logits_torch).max() / np.abs(logits_torch).max())
    if diff > 1e-4:
        raise SystemExit(f"qcnn reference disagrees with torch: max rel. diff {diff:.2e}")
    train_acc = float((qcnn.compile(model)(x_tr).argmax(1) == y_tr).mean())
    test_acc = float((logits.argmax(1) == y_te).mean())
    qcnn.save(model, args.output)
    size = Path(args.output).stat().st_size
    print(f"train accuracy {train_acc:.4f}, held-out accuracy {test_acc:.4f} ({len(y_te)} images), "
          f"qcnn vs torch max rel. diff {diff:.1e}; wrote {args.output} ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
