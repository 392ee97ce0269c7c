"""'ours': per-task choices made by cross-validation on the training set alone, the baseline among the candidates,
multi-task blending kept only where it helps, deterministic for a seed; and the candidate models' maths."""
import warnings

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.stats import kendalltau
from sklearn.kernel_ridge import KernelRidge as SklearnKernelRidge
from sklearn.linear_model import Ridge as SklearnRidge
from sklearn.model_selection import KFold

from oneforall.gpnas import (CrossValidatedPredictor, PaddleSlimGPNAS, build_predictor, encode, read_ranking_json,
                             scores_to_ranks)
from oneforall.gpnas.models import ARDKernelRidge, KernelRidge, PaddleSlimGPNASFamily, PairwiseLogistic, Ridge
from oneforall.gpnas.selection import fold_kendall_taus

BASELINE = PaddleSlimGPNASFamily("baseline-fast", "convert_x", mode="fast")


@pytest.fixture(scope="module")
def train(benchmark):
    return read_ranking_json(benchmark["train"], ranked=True)


@pytest.fixture(scope="module")
def interactions(tmp_path_factory, make_benchmark):
    """A family whose ranks come from interactions a linear model on convert_x cannot represent."""
    paths = make_benchmark(tmp_path_factory.mktemp("interactions"), 160, 200, seed=0, family="interactions")
    return read_ranking_json(paths["train"], ranked=True), read_ranking_json(paths["test_truth"], ranked=True)


def test_batch_kendall_tau_equals_scipy_tau_b_with_ties():
    rng = np.random.default_rng(0)
    truth = rng.permutation(40).astype(float)
    predictions = np.stack([rng.normal(size=40), np.round(rng.normal(size=40)), truth, -truth])
    expected = [kendalltau(row, truth).statistic for row in predictions]
    np.testing.assert_allclose(fold_kendall_taus(predictions, truth), expected, atol=1e-12)


def test_the_baseline_candidate_equals_paddleslims_own_fit_for_all_tasks_at_once(train):
    x = encode(train.codes[:120], "convert_x")
    y = train.ranks[:120].astype(float)
    for mode in ("fast", "slow"):
        ours = PaddleSlimGPNASFamily("b", "convert_x", mode=mode).fit(x[:80], y[:80]).predict(x[80:])[0]
        for column in (0, 5):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PendingDeprecationWarning)
                library = PaddleSlimGPNAS(mode=mode, backend="paddleslim").fit(x[:80], y[:80, column]).predict(x[80:])
            np.testing.assert_allclose(ours[:, column], library, rtol=1e-6, atol=1e-6 * np.abs(library).max())


def test_ridge_and_kernel_candidates_equal_scikit_learn(train):
    x = encode(train.codes, "onehot")
    y = train.ranks[:, :3].astype(float)
    ridge = Ridge("r", "onehot").fit(x[:100], y[:100]).predict(x[100:])
    for index, setting in enumerate(Ridge("r", "onehot").settings):
        expected = SklearnRidge(alpha=dict(setting)["alpha"]).fit(x[:100], y[:100]).predict(x[100:])
        np.testing.assert_allclose(ridge[index], expected, rtol=1e-8, atol=1e-8)
    family = KernelRidge("k", "onehot", kernel="rbf", settings=((("scale", 1.5), ("noise", 0.2)),))
    predicted = family.fit(x[:100], y[:100]).predict(x[100:])[0]
    d2 = ((x[:100, None] - x[None, :100]) ** 2).sum(-1)
    median = np.median(d2[np.triu_indices(100, 1)])
    reference = SklearnKernelRidge(alpha=0.2, kernel="rbf", gamma=1 / (2 * 1.5 ** 2 * median))
    expected = reference.fit(x[:100], y[:100] - y[:100].mean(0)).predict(x[100:]) + y[:100].mean(0)
    np.testing.assert_allclose(predicted, expected, rtol=1e-7, atol=1e-7)


def test_ard_likelihood_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    x, y = rng.integers(-1, 2, (30, 4)).astype(float), rng.normal(size=(30, 3))
    gaps = (x[:, None] - x[None]) ** 2
    theta = 0.3 * rng.normal(size=6)
    value, gradient = ARDKernelRidge.negative_log_likelihood(theta, gaps, y)
    numeric = approx_fprime(theta, lambda t: ARDKernelRidge.negative_log_likelihood(t, gaps, y)[0], 1e-6)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-4)


def test_ard_switches_off_irrelevant_features_shares_them_across_tasks_and_predicts_the_gp_mean():
    """Two tasks read features 0 and 1 of ten: the learned length scales of the other eight are far longer (and
    the more curved feature gets the shorter one), the
    held-out ranking beats the best isotropic RBF kernel, and the prediction is the GP posterior mean of the
    learned kernel (scikit-learn's kernel ridge on the same Gram matrix)."""
    rng = np.random.default_rng(0)
    x = rng.integers(-1, 2, (260, 10)).astype(float)
    clean = np.column_stack([np.sin(2 * x[:, 0]) + x[:, 0] * x[:, 1], x[:, 1] - 0.5 * x[:, 0] ** 2])
    y = clean + 0.1 * rng.normal(size=clean.shape)
    family = ARDKernelRidge("ard", "ordinal_absent")
    fitted = family.fit(x[:160], y[:160])
    assert fitted.length_scales[2:].min() > 5 * fitted.length_scales[:2].max(), fitted.length_scales.round(2)
    assert fitted.length_scales[0] < 0.7 * fitted.length_scales[1]  # feature 0 acts more curved (sin, square)
    ard = fitted.predict(x[160:], [1])[0]
    isotropic = KernelRidge("rbf", "ordinal_absent", kernel="rbf").fit(x[:160], y[:160]).predict(x[160:])
    tau = [[kendalltau(p[:, t], clean[160:, t]).statistic for t in range(2)] for p in (ard, *isotropic)]
    assert min(tau[0]) > max(min(row) for row in tau[1:]) + 0.02, np.round(tau[:3], 3)
    centre = x[:160].mean(0)
    gram = fitted.signal * ARDKernelRidge._gram(x[:160] - centre, x[:160] - centre, fitted.length_scales)
    cross = fitted.signal * ARDKernelRidge._gram(x[160:] - centre, x[:160] - centre, fitted.length_scales)
    reference = SklearnKernelRidge(alpha=dict(family.settings[1])["noise"] * fitted.signal, kernel="precomputed")
    expected = reference.fit(gram, y[:160] - y[:160].mean(0)).predict(cross) + y[:160].mean(0)
    np.testing.assert_allclose(ard, expected, rtol=1e-6, atol=1e-6)


def test_pairwise_learner_ranks_held_out_architectures(train):
    x = encode(train.codes, "onehot")
    scores = PairwiseLogistic("p", "onehot").fit(x[:120], train.ranks[:120, 3:4].astype(float)).predict(x[120:])
    assert kendalltau(scores[0, :, 0], train.ranks[120:, 3]).statistic > 0.5


def test_cross_validated_taus_come_from_the_training_set_alone(train):
    """The report's tau of the baseline candidate is the mean over the same splits of PaddleSlim's baseline fitted
    on the fitting rows and scored on the held-out rows of the training set: no other data enters the choice."""
    model = CrossValidatedPredictor(families=(BASELINE, Ridge("ridge", "onehot")), folds=4, repeats=1,
                                    seed=3).fit(train.codes, train.ranks)
    x, column = encode(train.codes, "convert_x"), 6
    expected = np.mean([
        kendalltau(PaddleSlimGPNAS().fit(x[fit], train.ranks[fit, column]).predict(x[held]),
                   train.ranks[held, column]).statistic
        for fit, held in KFold(4, shuffle=True, random_state=3).split(x)])
    assert model.report()["tasks"][column]["baseline_cv_tau"] == pytest.approx(expected, abs=1e-4)


def test_choice_follows_the_data_and_falls_back_to_the_baseline(train, interactions):
    """Ranks that a linear model on convert_x fits exactly: the order-free candidate loses, the baseline is kept.
    Ranks from interactions: the kernel that models them is chosen over the baseline."""
    weights = np.random.default_rng(0).normal(size=(100, 8))
    linear_in_convert_x = scores_to_ranks(encode(train.codes, "convert_x") @ weights)
    order_free = Ridge("order-free", "counts", settings=((("alpha", 1.0),),))
    fallback = CrossValidatedPredictor(families=(BASELINE, order_free), repeats=1, multitask_shares=(0.0,))
    fallback.fit(train.codes, linear_in_convert_x)
    assert all([member.name for member in choice.members] == ["baseline-fast"] for choice in fallback.choices_)
    train, _ = interactions
    kernel = KernelRidge("gp-poly2", "ordinal_absent", kernel="poly2")
    learned = CrossValidatedPredictor(families=(BASELINE, kernel), repeats=1, multitask_shares=(0.0,))
    learned.fit(train.codes, train.ranks)
    assert all(member.name.startswith("gp-poly2") for choice in learned.choices_[1:] for member in choice.members)


def test_ours_beats_the_baseline_on_unseen_architectures_of_a_family_it_must_learn(interactions):
    train, truth = interactions
    ours = build_predictor("ours").fit(train.codes, train.ranks).predict(truth.codes)
    baseline = build_predictor("baseline-fast").fit(train.codes, train.ranks).predict(truth.codes)
    tau = [np.mean([kendalltau(s[:, t], truth.ranks[:, t]).statistic for t in range(8)]) for s in (ours, baseline)]
    assert tau[0] > tau[1] + 0.1


def test_multitask_blending_is_kept_only_where_cross_validation_says_it_helps():
    """Three tasks share one signal, the third buried in noise; a fourth has a signal of its own. Blending with
    the others helps the noisy task and would hurt the fourth."""
    rng = np.random.default_rng(0)
    codes = np.array(sorted({"l" + "".join(f"{h}{m}1" for h, m in rng.integers(1, 4, (12, 2))) for _ in range(240)}))
    signal = encode(codes, "ordinal_absent") @ rng.normal(size=27)
    scores = np.column_stack([signal + 0.1 * rng.normal(size=len(codes)), signal + 0.1 * rng.normal(size=len(codes)),
                              signal + 3.0 * rng.normal(size=len(codes)),
                              encode(codes, "ordinal_absent") @ rng.normal(size=27)])
    model = CrossValidatedPredictor(families=(BASELINE, Ridge("ridge", "ordinal_absent")), repeats=1)
    model.fit(codes, scores_to_ranks(scores))
    noisy, unrelated = model.choices_[2], model.choices_[3]
    assert all(member.share > 0 for member in noisy.members)
    assert all(member.share == 0 for member in unrelated.members)


def test_same_seed_same_predictions_other_seed_other_folds(train):
    test_codes = train.codes[:50]
    first = build_predictor("ours", seed=1).fit(train.codes, train.ranks)
    again = build_predictor("ours", seed=1).fit(train.codes, train.ranks)
    np.testing.assert_array_equal(first.predict(test_codes), again.predict(test_codes))
    assert first.report() == again.report()
    other = build_predictor("ours", seed=2).fit(train.codes, train.ranks)
    assert other.report()["tasks"] != first.report()["tasks"]


def test_an_encoding_that_hides_absent_layers_is_refused():
    with pytest.raises(ValueError, match="absent layer"):
        CrossValidatedPredictor(families=(BASELINE, Ridge("r", "ordinal")))
    with pytest.raises(ValueError, match="ordinal_absent"):
        build_predictor("ridge", "ordinal")
    build_predictor("ridge", "ordinal+onehot")  # joined with an encoding that flags them: accepted


def test_the_baseline_must_be_a_candidate():
    with pytest.raises(ValueError, match="must include 'baseline-fast'"):
        CrossValidatedPredictor(families=(Ridge("r", "onehot"),))
