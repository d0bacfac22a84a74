"""``gfn-autolabel example OUT_DIR``: write the built-in example dataset."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("example", help="write the built-in example dataset (images, masks, labels.csv)")
    p.add_argument("out", help="folder to write")
    p.add_argument("--n", type=int, default=24, help="number of images (default 24)")
    p.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args) -> int:
    from core.data.example import make_example

    ds = make_example(args.out, n=args.n, size=args.size, seed=args.seed)
    print(f"wrote {len(ds)} images to {args.out} (images/, masks/, labels.csv, classes.json)")
    return 0
