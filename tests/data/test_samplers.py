"""Sampler contracts: order-keeping inference shards, P x K identity batches, rank splits, exact resume."""
import collections

import numpy as np
import pytest

from allinone.data import IdentitySampler, InferenceSampler, TrainingSampler, restore_order
from allinone.data.samplers import RankBatches


def test_inference_shards_are_contiguous_and_cover_every_index_once():
    shards = [list(InferenceSampler(10, rank, 3)) for rank in range(3)]
    assert shards == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_inference_sampler_on_one_rank_keeps_the_data_set_order():
    assert list(InferenceSampler(5)) == [0, 1, 2, 3, 4]


def test_restore_order_undoes_a_batch_major_gather():
    indices = np.array([0, 1, 4, 5, 2, 3, 6])  # rank 0 batch 0, rank 1 batch 0, rank 0 batch 1, ...
    values = indices[:, None] * 10.0
    assert restore_order(indices, values, 7)[:, 0].tolist() == [0, 10, 20, 30, 40, 50, 60]


@pytest.mark.parametrize("indices", [[0, 1, 1, 3], [0, 1, 3], [0, 1, 2, 3, 4]])
def test_restore_order_refuses_lost_or_repeated_items(indices):
    with pytest.raises(ValueError, match="do not cover 0..3 once each"):
        restore_order(indices, np.zeros((len(indices), 2)), 4)


def test_training_sampler_visits_every_index_once_per_epoch():
    sampler = TrainingSampler(np.zeros(12), batch_size=4, seed=1)
    epoch = sum((sampler.next_batch() for _ in range(3)), [])
    assert sorted(epoch) == list(range(12)) and epoch != list(range(12))


def test_training_batches_may_straddle_epochs():
    sampler = TrainingSampler(np.zeros(5), batch_size=3, seed=0)
    stream = sum((sampler.next_batch() for _ in range(10)), [])
    assert [sorted(stream[i:i + 5]) for i in range(0, 30, 5)] == [list(range(5))] * 6


def identity_targets():
    return np.repeat(np.arange(10), [4, 5, 6, 4, 8, 4, 2, 4, 5, 4])  # identity 6 has fewer than K images


def test_identity_sampler_gives_each_rank_p_identities_times_k_instances():
    targets = identity_targets()
    sampler = IdentitySampler(targets, batch_size=16, num_instances=4, world_size=2, seed=0)
    for _ in range(6):
        batch = sampler.next_batch()
        for rank in range(2):
            block = targets[batch[rank * 8:(rank + 1) * 8]]
            assert sorted(collections.Counter(block.tolist()).values()) == [4, 4]
            assert len(set(block[:4])) == 1 and len(set(block[4:])) == 1


def test_identity_sampler_needs_a_batch_of_whole_p_x_k_blocks_per_rank():
    with pytest.raises(ValueError, match="P x K"):
        IdentitySampler(identity_targets(), batch_size=12, num_instances=4, world_size=2)


@pytest.mark.parametrize("make", [lambda: TrainingSampler(np.zeros(7), batch_size=4, seed=3),
                                  lambda: IdentitySampler(identity_targets(), 8, num_instances=4, seed=3)])
def test_resuming_from_a_state_gives_the_same_batches(make):
    sampler = make()
    for _ in range(5):
        sampler.next_batch()
    state = sampler.state_dict()
    expected = [sampler.next_batch() for _ in range(12)]
    resumed = make()
    resumed.set_state_dict(state)
    assert [resumed.next_batch() for _ in range(12)] == expected


def indices(pairs):
    return [index for index, _ in pairs]


def test_ranks_split_each_global_batch_without_overlap():
    shares = []
    for rank in range(3):
        batches = iter(RankBatches(TrainingSampler(np.zeros(20), batch_size=6, seed=0), rank, world_size=3))
        shares.append([indices(next(batches)) for _ in range(4)])
    reference = TrainingSampler(np.zeros(20), batch_size=6, seed=0)
    for step in range(4):
        assert shares[0][step] + shares[1][step] + shares[2][step] == reference.next_batch()


def test_rank_batches_report_the_state_before_the_next_unconsumed_batch():
    batches = RankBatches(TrainingSampler(np.zeros(9), batch_size=3, seed=0))
    stream = iter(batches)
    first = next(stream)
    read_ahead = [next(stream), next(stream)]  # a loader prefetches; only the first batch is consumed
    batches.consumed()
    fresh = RankBatches(TrainingSampler(np.zeros(9), batch_size=3, seed=0))
    fresh.set_state_dict(batches.state_dict())
    assert first and next(iter(fresh)) == read_ahead[0]


def test_restoring_a_state_ends_iterators_handed_out_before():
    batches = RankBatches(TrainingSampler(np.zeros(9), batch_size=3, seed=0))
    old = iter(batches)
    next(old)
    state = batches.state_dict()
    batches.set_state_dict(state)
    assert list(old) == []  # a loader thread still reading ahead stops instead of advancing the restored sampler
    assert next(iter(batches)) == next(iter(RankBatches(TrainingSampler(np.zeros(9), batch_size=3, seed=0))))


def test_training_sampler_with_seed_0_is_the_original_permutation_stream():
    original = np.random.RandomState(0)
    stream = np.concatenate([original.permutation(7), original.permutation(7)])
    sampler = TrainingSampler(np.zeros(7), batch_size=7, seed=0)
    assert sampler.next_batch() + sampler.next_batch() == stream.tolist()
