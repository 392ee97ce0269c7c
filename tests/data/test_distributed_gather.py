"""Two real CPU processes (Paddle's launcher, gloo): each loads its contiguous share, `gather_in_order` gives every
rank the features of all images in data-set order, the same rows a single process computes."""
import os

import numpy as np

from allinone.data import build_test_loader, build_test_transform

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


def test_two_processes_gather_features_in_data_set_order(mini_root, tmp_path, launch):
    folder = os.path.join(mini_root, "faces_emore_val", "lfw")
    items = [os.path.join(folder, name) for name in sorted(os.listdir(folder))[:11]]  # 6 + 5 images per rank
    (tmp_path / "items.txt").write_text("\n".join(items))
    (tmp_path / "gather.py").write_text(SCRIPT)
    launch(tmp_path / "gather.py", tmp_path / "rows", tmp_path / "items.txt")
    expected = np.concatenate([batch["images"].numpy().reshape(len(batch["index"]), -1)[:, :16]
                               for batch in build_test_loader(items, build_test_transform((8, 8)), batch_size=4,
                                                              rank=0, world_size=1)])
    for rank in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"rows.rank{rank}.npy"), expected)
