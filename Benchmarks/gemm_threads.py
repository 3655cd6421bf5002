#!/usr/bin/env python3
"""cblas_sgemm of the machine's OpenBLAS at 1 and 2 threads on DiT-S/2 GEMM shapes.

Shows why Loom runs per-head attention GEMMs one whole GEMM per thread (each single-threaded)
while large GEMMs keep OpenBLAS's own threading. Needs numpy (e.g. the .venv-bench of
Benchmarks/pytorch/README.md):  .venv-bench/bin/python Benchmarks/gemm_threads.py
"""
import ctypes
import time

import numpy as np

blas = ctypes.CDLL("libopenblas.so.0")
FLOAT_P = ctypes.POINTER(ctypes.c_float)
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

# (m, n, k, transpose A, transpose B, GEMMs per timing)
SHAPES = [
    (256, 256, 64, False, True, 48),    # attention scores q·kᵀ per head (batch 8 × 6 heads)
    (256, 64, 256, False, False, 48),   # probabilities · v per head
    (64, 256, 256, True, False, 48),    # backward: probabilitiesᵀ · dy per head
    (2048, 1536, 384, False, True, 1),  # MLP fc1 at batch 8 × 256 tokens
    (2048, 384, 1536, False, True, 1),  # MLP fc2
    (384, 384, 2048, True, False, 1),   # weight gradient of a 384×384 projection
]


def gflops(m, n, k, ta, tb, count, repeats=5):
    a = np.random.rand(m * k).astype(np.float32)
    b = np.random.rand(k * n).astype(np.float32)
    c = np.zeros(m * n, np.float32)
    pa, pb, pc = (x.ctypes.data_as(FLOAT_P) for x in (a, b, c))
    lda, ldb = (m if ta else k), (k if tb else n)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(count):
            blas.cblas_sgemm(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k,
                             ctypes.c_float(1.0), pa, lda, pb, ldb, ctypes.c_float(0.0), pc, n)
        best = min(best, time.perf_counter() - start)
    return 2 * m * n * k * count / best / 1e9


print("shape (m×n×k)            1 thread   2 threads  (GFLOP/s, one GEMM at a time)")
for shape in SHAPES:
    rates = []
    for threads in (1, 2):
        blas.openblas_set_num_threads(threads)
        rates.append(gflops(*shape))
    m, n, k, ta, tb, _ = shape
    label = f"{m}×{n}×{k}" + (" Aᵀ" if ta else "") + (" Bᵀ" if tb else "")
    print(f"{label:24} {rates[0]:9.1f} {rates[1]:11.1f}")
