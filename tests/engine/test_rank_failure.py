"""One failing rank ends a multi-process training: `scripts/train.sh` with 2 CPU processes where only rank 1's data
fails. The other rank would otherwise wait in the gradient all-reduce for a partner that is gone; the timeout turns
such a hang into a failure of this test."""
import os
import shutil
import subprocess

from engine_tools import ROOT, tool_env, user_error_code
from test_distributed import COMPARABLE_YAML

from allinone.data.common import TrainImageDataset
from allinone.data.samplers import TrainingSampler

FAILING_ITERATION = 1
BATCH = 16  # task1's global batch in COMPARABLE_YAML: 8 per rank


def index_only_rank1_reads(dataset, iteration, read_ahead=4):
    """An index of task1 that rank 1 draws at `iteration` and no rank draws before it (nor rank 0 for `read_ahead`
    batches after it: its loader reads ahead). Task 1 shuffles with seed Global.seed + 0 = 0."""
    sampler = TrainingSampler(dataset.targets, BATCH, seed=0)
    batches = [sampler.next_batch() for _ in range(iteration + read_ahead + 1)]
    half = BATCH // 2
    seen = {i for b in batches[:iteration] for i in b} | {i for b in batches[iteration:] for i in b[:half]}
    return next(i for i in batches[iteration][half:] if i not in seen)


def test_a_data_error_on_one_rank_ends_the_two_process_run_with_its_message(tmp_path, mini_root):
    root = tmp_path / "datasets"
    shutil.copytree(mini_root, root)
    from allinone import data  # noqa: F401  (registers the data sets)

    dataset = TrainImageDataset.from_config("task1", str(root), ["MS1MV3"])
    first = index_only_rank1_reads(dataset, FAILING_ITERATION)
    # a training image that cannot be read is skipped for the next one; MAX_SKIPS + 1 in a row fail the sample
    broken = [dataset.sources[(first + k) % len(dataset)] for k in range(TrainImageDataset.MAX_SKIPS + 1)]
    for path in broken:
        with open(path, "wb") as f:
            f.write(b"not an image")

    config = tmp_path / "ddp.yaml"
    config.write_text(COMPARABLE_YAML)
    env = dict(tool_env(str(root)), NPROC="2", LOG_DIR=str(tmp_path / "launch_log"))
    result = subprocess.run(["sh", os.path.join(ROOT, "scripts", "train.sh"), str(config),
                             "-o", f"Global.output_dir={tmp_path / 'out'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, start_new_session=True)
    output = result.stdout + result.stderr  # the launcher shows the log of the first worker it found failed
    assert result.returncode != 0, output[-3000:]
    cause = f"failed with ImageReadError: task task1: {len(broken)} unreadable images in a row from "
    assert cause in output, output[-3000:]
    # rank 1's own error line names its rank; rank 0, whose all-reduce lost its partner, reports rank 1's error as
    # its own. The launcher streams rank 0's log and then shows the log of a failed worker: one of the two lines is
    # on the terminal whichever worker it found failed first.
    own_line = "\nerror: rank 1: train task 'task1' (TrainImageDataset): preparing sample "
    relayed = (f"\nerror: rank 1 failed at iteration {FAILING_ITERATION} with UnreadableImageError: train task "
               f"'task1'")
    assert own_line in output or relayed in output, output[-3000:]
    logs = tmp_path / "launch_log"
    assert own_line in (logs / "workerlog.1").read_text(errors="replace")
    rank0 = (logs / "workerlog.0").read_text(errors="replace")
    if "\nerror: " in rank0 or "Traceback (most recent call last)" in rank0:  # not stopped by the launcher first
        assert relayed in rank0 and "Traceback (most recent call last)" not in rank0, rank0[-3000:]
        assert f"the failed rank's log: {tmp_path / 'out' / 'log_rank1.txt'}" in rank0
