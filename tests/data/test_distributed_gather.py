"""Two real CPU processes (Paddle's launcher, gloo): each loads its contiguous share, `gather_in_order` gives every
rank the features of all images in data-set order, the same rows a single process computes."""
import os
import subprocess
import sys

import numpy as np

from allinone.data import build_test_loader, build_test_transform

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

SCRIPT = """
import sys
import numpy as np
import paddle.distributed as dist
from allinone.data import build_test_loader, build_test_transform, gather_in_order

dist.init_parallel_env()
items = open(sys.argv[2]).read().split()
indices, features = [], []
for batch in build_test_loader(items, build_test_transform((8, 8)), batch_size=2):
    indices.append(batch["index"].numpy())
    features.append(batch["images"].numpy().reshape(len(batch["index"]), -1)[:, :16])
# local rows reversed: the gathered order must come from the indices, not from the order ranks produce rows in
rows = gather_in_order(np.concatenate(features)[::-1], np.concatenate(indices)[::-1], len(items))
np.save(f"{sys.argv[1]}.rank{dist.get_rank()}.npy", rows)
"""


def test_two_processes_gather_features_in_data_set_order(mini_root, tmp_path):
    folder = os.path.join(mini_root, "faces_emore_val", "lfw")
    items = [os.path.join(folder, name) for name in sorted(os.listdir(folder))[:11]]  # 6 + 5 images per rank
    (tmp_path / "items.txt").write_text("\n".join(items))
    (tmp_path / "gather.py").write_text(SCRIPT)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PADDLE_")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                          str(tmp_path / "log"), str(tmp_path / "gather.py"), str(tmp_path / "rows"),
                          str(tmp_path / "items.txt")], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    expected = np.concatenate([batch["images"].numpy().reshape(len(batch["index"]), -1)[:, :16]
                               for batch in build_test_loader(items, build_test_transform((8, 8)), batch_size=4,
                                                              rank=0, world_size=1)])
    for rank in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"rows.rank{rank}.npy"), expected)
