"""An exception while loading data (batch sampler, dataset, transform, collate) is raised by the loop as a
`DataLoadingError` naming the data, the samples and the cause, for 0 and 2 loader workers, in the train, test and
traffic loaders; never a hang (Paddle's DataLoader on its own hangs with 0 workers and hides the message with
workers). The loaders run in a subprocess with a timeout, so a regression fails here instead of hanging the run."""
import json
import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest

from allinone.data import ImageReadError, collate
from allinone.data.load_errors import DataLoadingError, LoadFailure, check_carried

CASES_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load_failure_cases.py")
TIMEOUT = 60  # all cases of one worker mode take about 6 s; a hung loader never ends
ORIGINAL = "Traceback (most recent call last)"
MARKET = r"Market-1501-v15.09.15/query/0010_c1s1_000100_00.jpg"

# case -> (exception type, fragments of its message, fragments of its cause: the traceback in the loader)
EXPECTED = {
    "train_getitem": ("DataLoadingError", ["train task 't' (FailingSet): preparing sample 5 (seed ",
                                           "failed with ValueError: item five is broken"],
                      ["in __getitem__", 'raise ValueError("item five is broken")']),
    "train_collate": ("DataLoadingError", ["train task 't' (FailingSet): collating samples [",
                                           "(4 samples) failed with ValueError: this collate is broken"],
                      ["in collate", 'raise ValueError("this collate is broken")']),
    "train_dtype": ("DataLoadingError", ["train task 't' (FailingSet): collating samples [",
                                         "TypeError: collate returned batch['names'] as a numpy array of dtype <U6, "
                                         "which Paddle's loader cannot carry"], ["in check_carried"]),
    "train_sampler": ("DataLoadingError", ["train task 't' (FailingSet): drawing the next batch (batch sampler) failed "
                                           "with ValueError: this sampler is broken"], ["in next_batch"]),
    "train_transform": ("DataLoadingError", ["train task 'face' (TrainImageDataset): preparing sample ", "ms1mv3/id_",
                                             "failed with ValueError: this transform is broken"],
                        ["in broken_transform"]),
    "test_transform": ("DataLoadingError", ["test set Market1501 (TestImageDataset): preparing sample 0 (", MARKET,
                                            "failed with ValueError: this transform is broken"],
                       ["in broken_transform"]),
    "test_collate": ("DataLoadingError", ["test set Market1501 (TestImageDataset): collating samples [0, 1, 2, 3] (4 "
                                          "samples) failed with ValueError: field 'images': cannot stack arrays of "
                                          "different shapes [(3, 8, 8), (3, 9, 8)]"], ["in collate"]),
    "test_unreadable": ("UnreadableImageError", ["test set Market1501 (TestImageDataset): preparing sample 3 failed "
                                                 "with ImageReadError: cannot read image ", "broken.jpg"],
                        ["in read_image"]),
    "traffic_train_transform": ("DataLoadingError", ["train task 'fgvc' (ClassificationDataset): preparing sample ",
                                                     "track1_train_data/cls/train/",
                                                     "failed with ValueError: this transform is broken"],
                                ["in broken_transform"]),
    "traffic_train_collate": ("DataLoadingError", ["train task 'fgvc' (ClassificationDataset): collating samples [",
                                                   "field 'images': cannot stack arrays of different shapes"],
                              ["in stack_collate"]),
    "traffic_eval_transform": ("DataLoadingError", ["ClassificationDataset (val split): preparing sample 0 (",
                                                    "track1_train_data/cls/val/val_000_000.jpg",
                                                    "failed with ValueError: this transform is broken"],
                               ["in broken_transform"]),
    "traffic_eval_collate": ("DataLoadingError", ["ClassificationDataset (val split): collating samples [0, 1, 2, 3]",
                                                  "field 'images': cannot stack arrays of different shapes"],
                             ["in stack_collate"]),
}


@pytest.fixture(scope="module")
def traffic_root(tmp_path_factory):
    from oneforall.traffic.mini import make_traffic_tree

    path = tmp_path_factory.mktemp("traffic_tree")
    make_traffic_tree(str(path), seed=1)
    return str(path)


def run_cases(num_workers, mini_root, traffic_root, scratch):
    """Every case in one subprocess (its own process group, killed with its workers on timeout) -> {case: result};
    a case without a result hung (or its process died)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, CASES_SCRIPT, str(num_workers), mini_root, traffic_root, str(scratch),
                                *EXPECTED], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    results = {r["case"]: r for r in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}
    return results, err[-3000:]


@pytest.fixture(scope="module", params=[0, 2], ids=["0 workers", "2 workers"])
def results(request, mini_root, traffic_root, tmp_path_factory):
    return request.param, *run_cases(request.param, mini_root, traffic_root, tmp_path_factory.mktemp("scratch"))


@pytest.mark.parametrize("case", list(EXPECTED))
def test_a_failure_while_loading_is_raised_by_the_loop_naming_data_samples_and_cause(results, case):
    num_workers, outcomes, stderr = results
    assert case in outcomes, f"{case} with {num_workers} workers gave no result in {TIMEOUT} s (hung?):\n{stderr}"
    outcome = outcomes[case]
    kind, message_parts, cause_parts = EXPECTED[case]
    assert outcome["type"] == kind, outcome
    for part in message_parts:
        assert part in outcome["message"], (part, outcome["message"])
    assert ORIGINAL in outcome["cause"] and all(part in outcome["cause"] for part in cause_parts), outcome["cause"]
    where = "loader worker" if num_workers and case != "train_sampler" else "process"  # workers only read samples
    assert f"(raised in {where}" in outcome["cause"]
    # the loader stopped its workers (and, without workers, its read-ahead thread) before the error left it; a
    # worker loader's own thread ends by itself within Paddle's 5 s polling interval
    assert outcome["workers_alive"] == 0 and (num_workers or outcome["threads_alive"] == []), outcome


def test_an_unreadable_image_is_also_an_image_read_error(results):
    _, outcomes, _ = results
    assert {"DataLoadingError", "ImageReadError"} <= set(outcomes["test_unreadable"]["classes"])


def test_a_failure_record_pickles_whatever_the_original_exception_held():
    class Unpicklable(Exception):
        def __init__(self):
            super().__init__("holds a lambda")
            self.callback = lambda: None

    try:
        raise Unpicklable()
    except Unpicklable as err:
        failure = LoadFailure("train task 'x' (Set)", "sample", [(3, 99)], err, ["/data/a.jpg"])
    error = pickle.loads(pickle.dumps(failure)).error()
    assert isinstance(error, DataLoadingError) and not isinstance(error, ImageReadError)
    assert str(error) == ("train task 'x' (Set): preparing sample 3 (seed 99, /data/a.jpg) failed with Unpicklable: "
                          "holds a lambda")
    assert "raise Unpicklable()" in str(error.__cause__)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
    image_error = LoadFailure("evaluation images (TestImageDataset)", "sample", [0], ImageReadError("bad")).error()
    assert isinstance(pickle.loads(pickle.dumps(image_error)), ImageReadError)


def test_a_failed_collate_of_many_samples_shows_the_first_indices():
    failure = LoadFailure("evaluation images (TestImageDataset)", "collate", list(range(100, 120)), ValueError("x"))
    assert failure.summary() == ("evaluation images (TestImageDataset): collating samples [100, 101, 102, 103, 104, "
                                 "105, 106, 107, ...] (20 samples) failed with ValueError: x")


def test_collate_names_the_field_it_cannot_stack_or_that_a_sample_lacks():
    with pytest.raises(ValueError, match=r"field 'images': cannot stack arrays of different shapes \[\(2,\), \(3,\)\]"):
        collate([{"images": np.zeros(2)}, {"images": np.zeros(3)}])
    with pytest.raises(KeyError, match="field 'camids' is in the batch's first sample but not in all of them"):
        collate([{"images": np.zeros(2), "camids": 1}, {"images": np.zeros(2)}])
    with pytest.raises(TypeError, match="field 'meta': field 'box': cannot collate values of type NoneType"):
        collate([{"meta": {"box": None}}, {"meta": {"box": None}}])


def test_arrays_paddle_cannot_carry_are_named_and_the_others_pass():
    check_carried({"images": np.zeros((2, 3), "float32"), "ids": np.arange(2), "mask": np.ones(2, bool),
                   "names": ["a", "b"], "boxes": [np.zeros((0, 4), "float32")]})
    with pytest.raises(TypeError, match=r"batch\['boxes'\]\[1\] as a numpy array of dtype uint32"):
        check_carried({"boxes": [np.zeros(1, "float32"), np.zeros(1, "uint32")]})
