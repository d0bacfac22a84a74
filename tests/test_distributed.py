"""DDP under torchrun: two CPU processes (gloo) end with identical weights; rank 0 writes the checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from core.network import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    import numpy as np, torch
    from core.data.example import generate_arrays
    from core.network import GFNConfig, build_model
    from core.training import TrainConfig, train

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    out = {out!r}
    pairs = [(im, (m > 0).astype(np.uint8)) for _, _, im, m, _ in generate_arrays(6, 48, 0)]
    torch.manual_seed(100 + rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = build_model(GFNConfig(pretrained=False))
    torch.save(model.state_dict(), os.path.join(out, f"init{{rank}}.pt"))
    res = train(model, pairs, TrainConfig(epochs=2, batch_size=2, crop_size=32, max_side=None),
                checkpoint_path=os.path.join(out, "model.pt"))
    assert res.iterations == 4, res.iterations  # 6 images / 2 ranks / batch 2 -> 2 steps per epoch
    torch.save(model.state_dict(), os.path.join(out, f"rank{{rank}}.pt"))
""")


def test_two_cpu_processes_end_identical(tmp_path: Path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    init0 = torch.load(tmp_path / "init0.pt", weights_only=True)
    assert r0.keys() == r1.keys()
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(r0[k], init0[k]) for k in r0 if r0[k].is_floating_point())  # it trained
    ck = load_checkpoint(tmp_path / "model.pt")
    for k, v in ck.model.state_dict().items():
        torch.testing.assert_close(v, r0[k], rtol=0, atol=0, msg=k)
