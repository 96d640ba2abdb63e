"""PyTorch anchor for bench/kernels.ts: one CBN ResBlock forward+backward on one CPU thread.

The block matches the TF.js benchmark: conv3x3 -> batch norm with per-class gamma/beta picked by a one-hot
matmul -> leaky_relu(0.2), twice; when the channel count changes the skip path is conv1x1 -> CBN ->
leaky_relu(0.2), otherwise the identity; output = skip + main. Batch statistics are biased (training mode),
epsilon 1e-5. Tensors are NCHW, PyTorch's native layout.

Usage: /usr/bin/python3 bench/anchors/resblock_torch.py [--json] [--reps N]
Prints the median and the fastest milliseconds of forward+backward per shape, one line each.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

NUM_CLASSES = 10
EPSILON = 1e-5
SLOPE = 0.2

# (batch, height/width, in channels, out channels), the same list as RESBLOCK_SHAPES in bench/kernels.ts.
SHAPES = [(64, 16, 32, 32), (64, 16, 32, 64), (64, 32, 16, 16)]


def cbn(x, one_hot, gamma, beta):
    """Batch-normalize x [N,C,H,W] over (N,H,W), then scale and shift by the rows of the sample's class."""
    x_hat = F.batch_norm(x, None, None, training=True, eps=EPSILON)
    g = (one_hot @ gamma)[:, :, None, None]  # [N,K] x [K,C] -> [N,C,1,1]
    b = (one_hot @ beta)[:, :, None, None]
    return x_hat * g + b


def resblock(x, one_hot, p):
    h = F.leaky_relu(cbn(F.conv2d(x, p["w1"], padding=1), one_hot, p["g1"], p["b1"]), SLOPE)
    h = F.leaky_relu(cbn(F.conv2d(h, p["w2"], padding=1), one_hot, p["g2"], p["b2"]), SLOPE)
    if "w_skip" not in p:
        return x + h
    skip = F.leaky_relu(cbn(F.conv2d(x, p["w_skip"]), one_hot, p["g_skip"], p["b_skip"]), SLOPE)
    return skip + h


def make_params(c_in, c_out):
    def param(*shape, scale=0.1):
        return (torch.randn(*shape) * scale).requires_grad_()

    p = {
        "w1": param(c_out, c_in, 3, 3),
        "w2": param(c_out, c_out, 3, 3),
        "g1": torch.ones(NUM_CLASSES, c_out, requires_grad=True),
        "b1": torch.zeros(NUM_CLASSES, c_out, requires_grad=True),
        "g2": torch.ones(NUM_CLASSES, c_out, requires_grad=True),
        "b2": torch.zeros(NUM_CLASSES, c_out, requires_grad=True),
    }
    if c_in != c_out:
        p["w_skip"] = param(c_out, c_in, 1, 1)
        p["g_skip"] = torch.ones(NUM_CLASSES, c_out, requires_grad=True)
        p["b_skip"] = torch.zeros(NUM_CLASSES, c_out, requires_grad=True)
    return p


def measure(batch, size, c_in, c_out, reps):
    """Returns the median and the fastest milliseconds of one forward+backward over `reps` timed runs
    after 2 warm-ups."""
    x = torch.randn(batch, c_in, size, size, requires_grad=True)
    labels = torch.arange(batch) % NUM_CLASSES
    one_hot = F.one_hot(labels, NUM_CLASSES).float()
    p = make_params(c_in, c_out)
    dy = torch.randn(batch, c_out, size, size)
    inputs = [x, *p.values()]

    times_ms = []
    for rep in range(reps + 2):
        start = time.perf_counter()
        y = resblock(x, one_hot, p)
        torch.autograd.grad(y, inputs, grad_outputs=dy)
        if rep >= 2:
            times_ms.append((time.perf_counter() - start) * 1000)
    return statistics.median(times_ms), min(times_ms)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object per shape")
    parser.add_argument("--reps", type=int, default=10, help="timed runs per shape (default 10)")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error(f"--reps must be a positive integer, got {args.reps}")

    torch.set_num_threads(1)
    torch.manual_seed(0)
    for batch, size, c_in, c_out in SHAPES:
        median_ms, min_ms = measure(batch, size, c_in, c_out, args.reps)
        shape = f"N={batch} {size}x{size} {c_in}->{c_out}"
        if args.json:
            record = {"shape": shape, "medianMs": round(median_ms, 3), "minMs": round(min_ms, 3)}
            print(json.dumps({**record, "torch": torch.__version__}))
        else:
            print(f"pytorch resblock {shape}: median {median_ms:.1f} ms, min {min_ms:.1f} ms "
                  f"(torch {torch.__version__}, 1 thread)")


if __name__ == "__main__":
    main()
