"""The PyTorch side of ParaCuda's perf harness: the same workloads, on the same device, timed the same way.

    python3 bench.py --device cuda --json out.json [--shapes S1,S2] [--seconds 1] [--compile]
    python3 bench.py --device cpu --shapes tiny --json out.json          (what CI runs, to keep it working)
    python3 bench.py --check CHECKPOINT INPUT.npy LOGITS.npy             (our weights, PyTorch's logits)

Workloads (ParaFormer from paraformer.py, dropout 0): a training step of the full model (forward, cross-entropy,
backward, global-norm clipping at 1, Adam), inference at batch 1 and at the shape's batch. Each runs in every
variant the installed torch and device allow: eager and (with --compile) torch.compile; TF32 and bf16 autocast (GPU); branches
one after another or each on its own CUDA stream. GPU times come from CUDA events after warm-up (median of the
repeats within --seconds), inputs are fresh random data each repeat.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

import paraformer

SHAPES = {
    # S1: 28 px, patch 4 (50 tokens), dim 192, 3 heads, MLP 768, 6 branches x 1 block; batch 256.
    "S1": (dict(image_size=28, channels=1, patch=4, dim=192, heads=3, mlp_dim=768, branches=6, branch_depth=1), 256),
    # S2: the paper preset: 224 px, patch 16 (197 tokens), dim 192, 3 heads, MLP 768, 8 branches x 2 blocks; batch 500.
    "S2": (dict(image_size=224, channels=3, patch=16, dim=192, heads=3, mlp_dim=768, branches=8, branch_depth=2), 500),
    # tiny: small enough for a CPU in CI.
    "tiny": (dict(image_size=28, channels=1, patch=7, dim=32, heads=2, mlp_dim=64, branches=2, branch_depth=1), 8),
}


def config(shape):
    c, _ = SHAPES[shape]
    return dict(kind="para_former", classes=10, head_dim=0, depth=c["branches"] * c["branch_depth"], dropout=0,
                embedding_dropout=0, skip="normalized", pool="cls", **c)


class Streamed(torch.nn.Module):
    """Runs each branch of a ParaFormer on a CUDA stream of its own, joined before the sum."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.streams = [torch.cuda.Stream() for _ in model.branches]

    def forward(self, images):
        tokens = self.model.embed(images)
        main = torch.cuda.current_stream()
        outputs = []
        for branch, stream in zip(self.model.branches, self.streams):
            stream.wait_stream(main)
            with torch.cuda.stream(stream):
                outputs.append(branch(tokens))
        for stream in self.streams:
            main.wait_stream(stream)
        return self.model.head(sum(outputs))


def timer(device):
    if device == "cuda":
        def run(body):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            body()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
    else:
        def run(body):
            t = time.perf_counter()
            body()
            return (time.perf_counter() - t) * 1000
    return run


def measure(body, device, seconds, warmup=5, minimum=5):
    run = timer(device)
    for i in range(warmup):
        run(lambda: body(i))
    samples, start, i = [], time.perf_counter(), 0
    while len(samples) < minimum or time.perf_counter() - start < seconds:
        samples.append(run(lambda: body(i)))
        i += 1
    samples.sort()
    q = lambda f: samples[int(f * (len(samples) - 1))]
    return dict(median_ms=statistics.median(samples), p10_ms=q(0.1), p90_ms=q(0.9), repeats=len(samples))


def variants(device, compile):
    compiled = [False, True] if compile and hasattr(torch, "compile") and device == "cuda" else [False]
    precisions = ["tf32", "bf16"] if device == "cuda" else ["fp32"]
    streams = [False, True] if device == "cuda" else [False]
    for c in compiled:
        for p in precisions:
            for s in streams:
                yield c, p, s


def bench(shape, device, seconds, compile):
    cfg = config(shape)
    _, batch = SHAPES[shape]
    results = []
    for compiled, precision, streamed in variants(device, compile):
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        torch.manual_seed(1)
        base = paraformer.build(cfg).to(device)
        model = Streamed(base) if streamed else base
        runnable = torch.compile(model) if compiled else model
        optimizer = torch.optim.Adam(base.parameters(), lr=1e-3)
        autocast = (lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if precision == "bf16" else None
        sets = [(torch.randn(n, cfg["channels"], cfg["image_size"], cfg["image_size"], device=device),
                 torch.randint(0, 10, (n,), device=device)) for n in (batch, 1) for _ in range(4)]
        full, single = sets[:4], sets[4:]

        def forward(images):
            if autocast is None:
                return runnable(images)
            with autocast():
                return runnable(images)

        def step(i):
            images, labels = full[i % 4]
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(forward(images).float(), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(base.parameters(), 1.0)
            optimizer.step()

        def infer(data):
            def body(i):
                with torch.no_grad():
                    forward(data[i % 4][0])
            return body

        variant = dict(compiled=compiled, precision=precision, streams=streamed)
        for name, body, images in ((f"{shape} training step, batch {batch}", step, batch),
                                   (f"{shape} inference, batch 1", infer(single), 1),
                                   (f"{shape} inference, batch {batch}", infer(full), batch)):
            base.train(body is step)
            stats = measure(body, device, seconds)
            results.append(dict(workload=name, images=images, images_per_second=images * 1000 / stats["median_ms"], **variant, **stats))
            print(f"{name:38} {'compile' if compiled else 'eager':7} {precision:4} {'streams' if streamed else 'serial':7} "
                  f"{stats['median_ms']:9.3f} ms", file=sys.stderr)
    return results


def check(checkpoint, inputs, logits):
    """Loads a ParaCuda checkpoint into the reference and compares its logits with ParaCuda's, in float32 on the CPU."""
    torch.backends.cuda.matmul.allow_tf32 = False
    model, _ = paraformer.load(checkpoint)
    with torch.no_grad():
        ours = model(torch.from_numpy(np.load(inputs))).numpy()
    theirs = np.load(logits)
    error = float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))
    print(json.dumps(dict(checkpoint=checkpoint, relative_error=error)))
    return 0 if error <= 1e-4 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    parser.add_argument("--shapes", default="S1,S2")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--json")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compilation per variant)")
    parser.add_argument("--check", nargs=3, metavar=("CHECKPOINT", "INPUT", "LOGITS"))
    args = parser.parse_args()
    if args.check:
        return check(*args.check)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = [r for shape in args.shapes.split(",") for r in bench(shape, args.device, args.seconds, args.compile)]
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    report = dict(device=device, torch=torch.__version__, results=results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
