"""Distributed training: two CPU processes (gloo) train two steps with DDP on a synthetic set;
both ranks must end with identical weights that differ from the initial ones."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modeling"))
from detector_testing import make_dataset, tiny_cfg  # noqa: E402

from maskface.engine.launch import launch  # noqa: E402
from maskface.utils.comm import get_world_size  # noqa: E402


def _worker(cfg, out_dir):
    """Runs in each spawned process (module-level so that it pickles)."""
    from maskface.engine.trainer import DetectorTrainer
    from maskface.engine.utils import seed_all
    from maskface.utils.comm import get_rank

    rank = get_rank()
    seed_all(cfg.SEED, rank)  # different per rank: DDP must still start every rank from rank 0's weights
    trainer = DetectorTrainer(cfg)
    assert trainer.world_size == 2 and trainer.batch_per_rank == 1
    torch.save(trainer.unwrapped_model.state_dict(), Path(out_dir) / f"init_rank{rank}.pth")
    trainer.resume_or_load(resume=False)
    trainer.train()
    torch.save(trainer.unwrapped_model.state_dict(), Path(out_dir) / f"final_rank{rank}.pth")


def test_two_process_gloo_training_keeps_ranks_in_sync(tmp_path):
    data = make_dataset(tmp_path / "data", num_images=4)
    cfg = tiny_cfg(tmp_path, ["DATASETS.TRAIN", f"['{data}']", "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2"])
    launch(_worker, num_gpus_per_machine=2, args=(cfg, str(tmp_path)))
    assert get_world_size() == 1  # the parent never joined the group
    init0 = torch.load(tmp_path / "init_rank0.pth")
    final0, final1 = torch.load(tmp_path / "final_rank0.pth"), torch.load(tmp_path / "final_rank1.pth")
    assert all(torch.equal(final0[k], final1[k]) for k in final0), "ranks diverged"
    changed = [k for k in final0 if final0[k].is_floating_point() and not torch.equal(final0[k], init0[k])]
    assert len(changed) > 10, "weights did not move"
    out = Path(cfg.OUTPUT_DIR)
    assert (out / "model_final.pth").is_file() and (out / "metrics.json").is_file()
    assert not (out / "log.txt.rank1").exists() or (out / "log.txt").is_file()
    ckpt = torch.load(out / "model_final.pth", weights_only=False)
    assert ckpt["iteration"] == 2 and len(ckpt["rng_states"]) == 2
