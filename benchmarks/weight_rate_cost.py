"""What the weight rate term (--weight-rate-slope) costs a training step on the `large` decoder:
its bits as a loss term through autograd (the first version) against the gradient written
straight into .grad (codec.train.weight_rate.WeightRatePull), in one run, with the ratio.

    python benchmarks/weight_rate_cost.py [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from latentcast.codec.nn.config import CodecConfig
from latentcast.codec.nn.model import build_model, set_weight_fake_quant
from latentcast.codec.train.weight_rate import WeightRatePull, laplace_code_bits

BITS = 3.5


def mean_ms(fn, repeat: int = 200) -> float:
    """Mean milliseconds a call over ``repeat`` calls, after 10 to warm up."""
    for _ in range(10):
        fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    decoder = build_model(CodecConfig.plan(320, 180, 512, capacity="large")).decoder
    decoder = decoder.to(memory_format=torch.channels_last)
    set_weight_fake_quant(decoder, BITS)
    weights = [w for w in decoder.parameters() if w.ndim >= 2]

    def as_loss() -> None:
        (1e-9 * laplace_code_bits(weights, BITS)).backward()

    pull, mse = WeightRatePull(2.0, 3e6), torch.tensor(0.002)
    loss_ms, written_ms = mean_ms(as_loss), mean_ms(lambda: pull.add_gradient(decoder, mse))
    print(f"large decoder, {args.threads} threads: loss term {loss_ms:.2f} ms a step, written gradient "
          f"{written_ms:.2f} ms ({loss_ms / written_ms:.1f}x less)")


if __name__ == "__main__":
    main()
