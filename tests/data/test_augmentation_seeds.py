"""Random augmentation as a function of (loader seed, task, position of the sample in the task's stream): loaders
agree to the bit with or without workers, a restored loader continues to the bit, and the global generators are
left alone."""
import random

import numpy as np
import pytest

from allinone.data import TrainingSampler, build_train_loader, build_train_transform
from allinone.data.common import TrainImageDataset
from allinone.data.samplers import RankBatches
from allinone.data.transforms import GLOBAL_RNGS_LOCK
from allinone.registry import DATASETS

AUGMENT = {"size": [32, 16], "flip_prob": 0.5, "padding": 4, "autoaug_prob": 0.5, "erasing_prob": 0.5,
           "mean": [127.5] * 3, "std": [127.5] * 3}


def tasks(**augment):
    """Two tasks, so that a loader without workers runs two read-ahead threads on the same generators."""
    transform = {**AUGMENT, **augment}
    return {"face": {"datasets": ["MS1MV3"], "batch_size": 6, "transform": transform},
            "person": {"datasets": ["Market1501"], "batch_size": 8, "transform": transform,
                       "sampler": {"name": "IdentitySampler", "num_instances": 2}}}


OPENED = []


@pytest.fixture(autouse=True)
def close_loaders():
    """Stop the workers of every loader a test opened."""
    yield
    while OPENED:
        OPENED.pop().close()


def loader(mini_root, seed=3, num_workers=0, **augment):
    OPENED.append(build_train_loader(tasks(**augment), root=mini_root, seed=seed, num_workers=num_workers, rank=0,
                                     world_size=1))
    return OPENED[-1]


def images(batches):
    return [{task: batch["images"].numpy() for task, batch in b.items()} for b in batches]


def assert_same_images(got, expected):
    assert len(got) == len(expected)
    for step, (a, b) in enumerate(zip(got, expected)):
        for task in b:
            np.testing.assert_array_equal(a[task], b[task], err_msg=f"iteration {step}, task {task}")


def market_dataset(mini_root):
    market = DATASETS.build({"name": "Market1501", "root": mini_root})
    return TrainImageDataset([("market1501", market.train)], build_train_transform(AUGMENT), "person")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_two_loaders_with_the_same_seed_give_bit_identical_augmented_batches(mini_root, num_workers):
    first = images(next(loader(mini_root, num_workers=num_workers)) for _ in range(5))
    second = images(next(loader(mini_root, num_workers=num_workers)) for _ in range(5))
    assert_same_images(second, first)
    plain = images(next(loader(mini_root, flip_prob=0.0, padding=0, autoaug_prob=0.0, erasing_prob=0.0))
                   for _ in range(5))
    assert any(not np.array_equal(a[task], b[task]) for a, b in zip(first, plain) for task in a)  # augmentation is on


def test_loaders_with_and_without_workers_give_the_same_augmented_batches(mini_root):
    assert_same_images(images(next(loader(mini_root, num_workers=2)) for _ in range(3)),
                       images(next(loader(mini_root, num_workers=0)) for _ in range(3)))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_loader_restored_from_its_state_continues_with_bit_identical_augmented_batches(mini_root, num_workers):
    uninterrupted = loader(mini_root, num_workers=num_workers)
    for _ in range(4):  # the loader reads ahead: the state is taken with batches already prepared
        next(uninterrupted)
    state = uninterrupted.state_dict()
    expected = images(next(uninterrupted) for _ in range(4))
    restored = loader(mini_root, num_workers=num_workers)
    next(restored)  # a loader that has already run and read ahead, then restored
    restored.set_state_dict(state)
    assert_same_images(images(next(restored) for _ in range(4)), expected)


def global_states():
    with GLOBAL_RNGS_LOCK:  # not while a loader thread of another test holds them
        python, numpy = random.getstate(), np.random.get_state()
    return python, (numpy[0], numpy[1].tolist(), *numpy[2:])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loading_leaves_the_global_python_and_numpy_generators_as_they_were(mini_root, num_workers):
    before = global_states()
    training = loader(mini_root, num_workers=num_workers)
    for _ in range(3):
        next(training)
    assert global_states() == before


def test_a_sample_is_augmented_by_its_seed_alone(mini_root):
    dataset = market_dataset(mini_root)
    once, again = dataset[(5, 1234)]["images"], dataset[(5, 1234)]["images"]
    np.testing.assert_array_equal(once, again)
    others = [dataset[(5, seed)]["images"] for seed in range(1235, 1240)]
    assert not any(np.array_equal(once, other) for other in others)


def pairs_of(batches, count):
    stream = iter(batches)
    return [next(stream) for _ in range(count)]


def test_sample_seeds_change_with_the_loader_seed_the_task_and_the_position():
    def seeds(seed=0, task=0):
        batches = pairs_of(RankBatches(TrainingSampler(np.zeros(10), batch_size=5, seed=0), seed=seed, task=task), 4)
        return [sample_seed for batch in batches for _, sample_seed in batch]

    reference = seeds()
    assert len(set(reference)) == len(reference)  # every position its own seed (10 items: indices repeat)
    assert not set(reference) & set(seeds(seed=1)) and not set(reference) & set(seeds(task=1))


def test_sample_seeds_of_the_training_sampler_do_not_depend_on_the_number_of_ranks():
    def rank_batches(rank, world_size):
        return pairs_of(RankBatches(TrainingSampler(np.zeros(10), batch_size=4, seed=2), rank, world_size, seed=5), 6)

    one = rank_batches(0, 1)
    two = [a + b for a, b in zip(rank_batches(0, 2), rank_batches(1, 2))]
    assert two == one


def test_a_restored_batch_sampler_gives_the_same_indices_and_seeds():
    def fresh():
        return RankBatches(TrainingSampler(np.zeros(7), batch_size=3, seed=0), seed=9, task=2)

    batches = fresh()
    stream = iter(batches)
    next(stream)
    read_ahead = [next(stream) for _ in range(3)]
    batches.consumed()
    restored = fresh()
    restored.set_state_dict(batches.state_dict())
    assert pairs_of(restored, 3) == read_ahead


def test_a_batch_sampler_state_without_the_batch_number_is_an_error():
    batches = RankBatches(TrainingSampler(np.zeros(7), batch_size=3, seed=0))
    with pytest.raises(ValueError, match=r"needs keys \['batch_number', 'sampler'\]"):
        batches.set_state_dict(TrainingSampler(np.zeros(7), batch_size=3, seed=0).state_dict())
