"""Both directions of the PyTorch interop, for ParaCuda's tests.

    python3 interop_check.py EXPORTED INPUT.npy LOGITS_OUT.npy FRESH_OUT SEED
Loads EXPORTED (paracuda export --format pytorch) with load_state_dict(strict=True) and writes its logits on
INPUT; then builds a fresh model of the same config from SEED, saves it to FRESH_OUT for `paracuda import`, and
writes its logits beside LOGITS_OUT as *.fresh.npy.
"""
import sys

import numpy as np
import torch

import paraformer


def main(exported, inputs, logits_out, fresh_out, seed):
    images = torch.from_numpy(np.load(inputs))
    model, config = paraformer.load(exported)
    with torch.no_grad():
        np.save(logits_out, model(images).numpy())
        torch.manual_seed(int(seed))
        fresh = paraformer.build(config).eval()
        paraformer.save(fresh_out, fresh, config)
        np.save(logits_out.replace(".npy", ".fresh.npy"), fresh(images).numpy())


if __name__ == "__main__":
    main(*sys.argv[1:6])
