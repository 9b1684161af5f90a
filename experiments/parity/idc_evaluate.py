"""The IDC authors' own evaluation of one condensed set (run-level parity, issue #13): their
``Synthesizer.loader`` (multi-formation decode, their per-dataset transform) and ``train.train``
(ConvNet-3, SGD, MultiStepLR, their DSA and mixup settings, ``args.epochs``), on their validation
loader. Run as a subprocess with the export's folder on ``sys.path``, because their ``argument``
module parses ``sys.argv`` when it is imported:

    python idc_evaluate.py --repo ../authors/IDC-cpu --synset set.pt --seed 7 -- <their condense.py flags>

``set.pt`` holds ``[data, targets]``: the compact (undecoded) images in [0, 1] as their
``condense.py`` saves them. Prints one JSON line: {"acc_last", "acc_best", "epochs", "decoded"}.
"""
from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--synset", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("flags", nargs=argparse.REMAINDER)
    ours = parser.parse_args()
    flags = [f for f in ours.flags if f != "--"]
    sys.path.insert(0, ours.repo)
    sys.argv = ["condense.py", *flags]

    import numpy as np
    import torch
    torch.set_num_threads(1)
    from argument import args  # noqa: E402  (the authors' module: parses sys.argv)
    from condense import Synthesizer, load_resized_data  # noqa: E402
    from train import define_model, train  # noqa: E402

    data, targets = torch.load(ours.synset, weights_only=False)
    trainset, val_loader = load_resized_data(args)
    nch, hs, ws = trainset[0][0].shape
    synset = Synthesizer(args, trainset.nclass, nch, hs, ws)
    synset.data.data = data.detach().float().clone()
    synset.targets = targets.long().clone()
    # their evaluation draws network weights and augmentation from the global RNGs
    np.random.seed(ours.seed)
    torch.manual_seed(ours.seed)
    loader = synset.loader(args, args.augment)
    model = define_model(args, trainset.nclass)
    best, last = train(args, model, loader, val_loader, logger=lambda *a, **k: None)
    print(json.dumps({"acc_last": float(last), "acc_best": float(best), "epochs": args.epochs,
                      "decoded": len(loader.dataset)}))


if __name__ == "__main__":
    main()
