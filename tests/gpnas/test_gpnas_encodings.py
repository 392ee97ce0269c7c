"""Feature encodings: the notebook's convert_x exactly, and our ordinal / one-hot / count encodings."""
import numpy as np
import pytest

from oneforall.gpnas import ArchCodeError, encode

TRAIN_ARCH1 = "l231131331121121331111211121331321321"
DEPTH10 = "j111231321311311221231121111231000000"

# convert_x of TRAIN_ARCH1 written out by hand, one block per heads / mlp digit (layers 0-9: 4 values, 10-11: 5)
TRAIN_ARCH1_CONVERT_X = ("0110 0011  1100 0011  0011 0011  1100 0110  1100 0110  "
                         "0011 0011  1100 1100  0110 1100  1100 0110  0011 0011  00110 01100  00110 01100")


def as_vector(text):
    return np.array([int(ch) for ch in text if ch in "01"], dtype=float)


def test_convert_x_reproduces_the_notebook_vector():
    assert np.array_equal(encode([TRAIN_ARCH1], "convert_x")[0], as_vector(TRAIN_ARCH1_CONVERT_X))


def test_convert_x_flags_absent_layers_in_the_fifth_value():
    x = encode([DEPTH10], "convert_x")[0]
    assert x.shape == (100,)
    assert np.array_equal(x[80:], as_vector("00001 00001 00001 00001"))


def test_convert_x_with_bias_has_rank_51_as_the_spec_measured(benchmark):
    from oneforall.gpnas import read_ranking_json

    x = encode(read_ranking_json(benchmark["test"]).codes, "convert_x")
    assert np.linalg.matrix_rank(np.hstack([x, np.ones((len(x), 1))])) == 51


def test_ordinal_centres_depth_heads_and_mlp_and_puts_absent_layers_in_the_middle():
    x = encode([DEPTH10], "ordinal")[0]
    assert x.shape == (25,)
    assert x[0] == -1
    assert list(x[1:13]) == [1, 0, -1, -1, -1, 0, 0, 1, 1, 0, 0, 0]
    assert list(x[13:25]) == [1, -1, 0, 1, 1, 0, -1, 0, 1, -1, 0, 0]


def test_onehot_marks_one_choice_per_present_layer_and_none_for_absent_layers():
    x = encode([DEPTH10], "onehot")[0].reshape(25, 3)
    assert list(x[0]) == [1, 0, 0]
    assert list(x[1]) == [0, 0, 1] and list(x[2]) == [0, 0, 1]
    assert x[1:21].sum() == 20 and x[21:].sum() == 0


def test_counts_summarise_depth_and_choices():
    assert list(encode([DEPTH10], "counts")[0]) == [10, 3, 4, 3, 3, 3, 4]


def test_joined_names_concatenate_encodings():
    x = encode([DEPTH10, TRAIN_ARCH1], "ordinal+counts")
    assert np.array_equal(x, np.hstack([encode([DEPTH10, TRAIN_ARCH1], "ordinal"),
                                        encode([DEPTH10, TRAIN_ARCH1], "counts")]))


def test_unknown_encoding_name_is_an_error_naming_it():
    with pytest.raises(ValueError, match="'onehott'"):
        encode([DEPTH10], "ordinal+onehott")


def test_malformed_code_in_a_batch_names_its_index_and_position():
    bad = DEPTH10[:31] + "1" + DEPTH10[32:]
    with pytest.raises(ArchCodeError, match=r"code #1: .*position 31"):
        encode([DEPTH10, bad], "ordinal")
    with pytest.raises(ArchCodeError, match=r"code #0: .*length 3"):
        encode(["j11"], "ordinal")
