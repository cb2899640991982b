"""scikit-learn's digits (1,797 8x8 grey images, 10 classes) as qcnn network inputs.

Inputs are the 0..16 pixel counts divided by 16, shaped [N, 1, 8, 8] float32. The split is
stratified, 75 % train / 25 % held out, ``random_state=0``: 1,347 / 450 images.
"""

from __future__ import annotations

import numpy as np

SEED = 0
TEST_SIZE = 0.25


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train [1347, 1, 8, 8], y_train [1347], x_test [450, 1, 8, 8], y_test [450])."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_SIZE, random_state=SEED, stratify=y)
    return x_tr, y_tr, x_te, y_te
