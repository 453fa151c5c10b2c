"""objectives.py against numpy references and hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import HAS_ENVPOOL, LossBatch, algo_loss

from purejaxspi.algo import objectives
from purejaxspi.algo.config import HParams


def numpy_gae(rewards, values, next_values, terminated, done, gamma, lam):
    T, N = rewards.shape
    adv = np.zeros((T, N))
    running = np.zeros(N)
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * next_values[t] * (1 - terminated[t]) - values[t]
        running = delta + gamma * lam * (1 - done[t]) * running
        adv[t] = running
    return adv, adv + values


def test_gae_matches_numpy_loop_with_terminations_and_truncations():
    rng = np.random.default_rng(0)
    T, N = 17, 5
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    next_values = rng.normal(size=(T, N))
    terminated = (rng.random((T, N)) < 0.1).astype(float)
    truncated = ((rng.random((T, N)) < 0.1) & (terminated == 0)).astype(float)
    done = np.maximum(terminated, truncated)
    adv, ret = objectives.gae(
        *(jnp.asarray(x, jnp.float32) for x in (rewards, values, next_values, terminated, done)), 0.97, 0.9
    )
    ref_adv, ref_ret = numpy_gae(rewards, values, next_values, terminated, done, 0.97, 0.9)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_and_termination_does_not():
    # one step, value of successor 10: truncated keeps gamma*10, terminated drops it
    r, v, nv = jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.full((1, 2), 10.0)
    term = jnp.array([[1.0, 0.0]])
    done = jnp.array([[1.0, 1.0]])
    adv, _ = objectives.gae(r, v, nv, term, done, 0.9, 0.95)
    np.testing.assert_allclose(adv, [[0.0, 9.0]], atol=1e-6)


def test_smooth_l1_values():
    x = jnp.array([-3.0, -0.5, 0.0, 0.2, 2.0])
    np.testing.assert_allclose(objectives.smooth_l1(x), [2.5, 0.125, 0.0, 0.02, 1.5], atol=1e-7)


HP = HParams(
    learning_rate=1e-3,
    clip_coef=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    gamma=0.99,
    gae_lambda=0.95,
    max_grad_norm=0.5,
    reward_coef=0.1,
    transition_coef=0.05,
    gradient_penalty=0.01,
)


def tiny_inputs():
    log_probs = jnp.log(jnp.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1], [0.6, 0.4]]))
    return LossBatch(
        log_probs=log_probs,
        value=jnp.array([1.0, 0.0, 2.0, -1.0]),
        reward_pred=jnp.array([0.5, 1.0, 0.0, 3.0]),
        next_latent_pred=jnp.array([[0.0, 0.5], [2.0, 0.0], [1.0, 1.0], [0.0, 0.0]]),
        next_latent=jnp.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 4.0]]),
        action=jnp.array([0, 1, 0, 1]),
        old_log_prob=jnp.log(jnp.array([0.4, 0.8, 0.5, 0.5])),
        advantages=jnp.array([1.0, -1.0, 2.0, 0.0]),
        returns=jnp.array([2.0, 0.0, 1.0, 1.0]),
        reward=jnp.array([0.0, 1.0, 0.0, 1.0]),
        transition_valid=jnp.array([True, True, True, False]),
    )


def hand_terms(x, algo, reduction="sum"):
    """The three objectives written out in numpy, sample by sample."""
    lp = np.asarray(x.log_probs)
    a = np.asarray(x.action)
    rho = np.exp(lp[np.arange(4), a] - np.asarray(x.old_log_prob))
    adv = np.asarray(x.advantages)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    d_r = np.asarray(x.reward_pred) - np.asarray(x.reward)

    def huber(d):
        return np.where(np.abs(d) < 1, 0.5 * d**2, np.abs(d) - 0.5)

    l_r = huber(d_r)
    per_entry = huber(np.asarray(x.next_latent_pred) - np.asarray(x.next_latent))
    reduce = per_entry.mean(-1) if reduction == "mean" else per_entry.sum(-1)
    l_p = reduce * np.asarray(x.transition_valid)
    u = adv - (HP.reward_coef * l_r + HP.transition_coef * l_p) if algo == "deepspi" else adv
    eps = HP.clip_coef
    pg = np.mean(np.maximum(-u * rho, -u * np.clip(rho, 1 - eps, 1 + eps)))
    v = 0.5 * np.mean((np.asarray(x.value) - np.asarray(x.returns)) ** 2)
    ent = np.mean(-(np.exp(lp) * lp).sum(-1))
    aux = np.mean(HP.reward_coef * l_r + HP.transition_coef * l_p) if algo == "deepmdp" else 0.0
    penalty = HP.gradient_penalty * float(x.gradient_penalty) if algo != "ppo" else 0.0
    return pg + HP.vf_coef * v - HP.ent_coef * ent + aux + penalty, pg, l_r.mean(), l_p.sum() / 3


def hand_diagnostics(x, algo):
    """(clip fraction, fraction of ratios outside [2 - C, C]) written out sample by sample."""
    lp = np.asarray(x.log_probs)
    rho = np.exp(lp[np.arange(4), np.asarray(x.action)] - np.asarray(x.old_log_prob))
    adv = np.asarray(x.advantages)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    if algo == "deepspi":

        def huber(d):
            return np.where(np.abs(d) < 1, 0.5 * d**2, np.abs(d) - 0.5)

        l_r = huber(np.asarray(x.reward_pred) - np.asarray(x.reward))
        l_p = huber(np.asarray(x.next_latent_pred) - np.asarray(x.next_latent)).sum(-1) * np.asarray(x.transition_valid)
        adv = adv - (HP.reward_coef * l_r + HP.transition_coef * l_p)
    C = 1 + HP.clip_coef
    # the clipped term is the larger one of the max exactly where the clip cuts the gradient
    binds = [(u > 0 and r > C) or (u < 0 and r < 2 - C) for u, r in zip(adv, rho)]
    outside = [r > C or r < 2 - C for r in rho]
    return np.mean(binds), np.mean(outside), rho.min(), rho.max()


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("algo", ["deepspi", "deepmdp", "ppo"])
def test_objectives_match_hand_computation(algo, reduction):
    """The paper's code reduces L_P by the sum for sampled heads and by the mean for the deterministic one;
    the gradient penalty enters both world-model objectives (weighted by lambda_GP), never PPO's."""
    x = tiny_inputs()._replace(gradient_penalty=jnp.float32(3.0))
    terms = algo_loss(algo, x, HP, reduction)
    total, pg, l_r, l_p = hand_terms(x, algo, reduction)
    np.testing.assert_allclose(terms.total, total, rtol=1e-5)
    np.testing.assert_allclose(terms.policy_loss, pg, rtol=1e-5)
    if algo == "ppo":  # no world model: no world-model terms
        assert terms.world_model == {}
        return
    np.testing.assert_allclose(terms.world_model["reward_loss"], l_r, rtol=1e-6)
    np.testing.assert_allclose(terms.world_model["transition_loss"], l_p, rtol=1e-6)
    np.testing.assert_allclose(terms.world_model["gradient_penalty"], 3.0)


@pytest.mark.parametrize("algo", ["deepspi", "ppo"])
def test_spi_diagnostics_match_hand_computation(algo):
    # ratios 1.25, 1.0, 1.8, 0.8: two outside [0.8, 1.2]; sample 2's negative advantage is not clipped
    x = tiny_inputs()._replace(advantages=jnp.array([1.0, -1.0, -2.0, 0.0]))
    terms = algo_loss(algo, x, HP)
    clip_fraction, outside, rho_min, rho_max = hand_diagnostics(x, algo)
    assert (clip_fraction, outside) == (0.25, 0.5)
    assert float(terms.ratio_outside) == pytest.approx(outside)
    assert float(terms.clip_fraction) == pytest.approx(clip_fraction)
    assert float(terms.ratio_min) == pytest.approx(rho_min, rel=1e-5)
    assert float(terms.ratio_max) == pytest.approx(rho_max, rel=1e-5)


def test_the_three_objectives_differ_when_the_world_model_errs():
    x = tiny_inputs()
    totals = {a: float(algo_loss(a, x, HP).total) for a in ("deepspi", "deepmdp", "ppo")}
    assert len({round(t, 6) for t in totals.values()}) == 3


def test_deepspi_with_zero_alphas_is_ppo_exactly():
    x = tiny_inputs()
    hp0 = HP.replace(reward_coef=0.0, transition_coef=0.0)

    def total(log_probs, algo):
        return algo_loss(algo, x._replace(log_probs=log_probs), hp0).total

    assert float(total(x.log_probs, "deepspi")) == float(total(x.log_probs, "ppo"))
    g_spi = jax.grad(total)(x.log_probs, "deepspi")
    g_ppo = jax.grad(total)(x.log_probs, "ppo")
    np.testing.assert_array_equal(g_spi, g_ppo)


def test_deepspi_world_model_gradient_is_weighted_by_the_ratio():
    # inside the surrogate, dpg/dL_R,i = alpha_R * w_i / B with w_i the active branch's (clipped) ratio
    x = tiny_inputs()

    def total(reward_pred):
        return algo_loss("deepspi", x._replace(reward_pred=reward_pred), HP).policy_loss

    g = np.asarray(jax.grad(total)(x.reward_pred))
    lp = np.asarray(x.log_probs)
    rho = np.exp(lp[np.arange(4), np.asarray(x.action)] - np.asarray(x.old_log_prob))
    adv = np.asarray(x.advantages)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    d = np.asarray(x.reward_pred) - np.asarray(x.reward)
    huber_grad = np.clip(d, -1, 1)
    l_r = np.where(np.abs(d) < 1, 0.5 * d**2, np.abs(d) - 0.5)
    l_p = np.where(
        np.abs(np.asarray(x.next_latent_pred) - np.asarray(x.next_latent)) < 1,
        0.5 * (np.asarray(x.next_latent_pred) - np.asarray(x.next_latent)) ** 2,
        np.abs(np.asarray(x.next_latent_pred) - np.asarray(x.next_latent)) - 0.5,
    ).sum(-1) * np.asarray(x.transition_valid)
    u = adv - HP.reward_coef * l_r - HP.transition_coef * l_p
    clipped = np.clip(rho, 1 - HP.clip_coef, 1 + HP.clip_coef)
    w = np.where(-u * rho >= -u * clipped, rho, clipped)
    np.testing.assert_allclose(g, HP.reward_coef * w * huber_grad / 4, rtol=1e-5, atol=1e-8)
    assert np.count_nonzero(g) == 2  # samples 1 and 2 predict their rewards exactly


def test_squared_slope_is_the_mean_squared_input_gradient_norm():
    grads = np.random.default_rng(0).normal(size=(5, 3, 2, 4)).astype(np.float32)
    expected = np.mean(np.sum(grads.reshape(5, -1) ** 2, axis=-1))
    np.testing.assert_allclose(objectives.squared_slope(jnp.asarray(grads)), expected, rtol=1e-5)


def test_the_deterministic_head_takes_the_mean_over_latent_entries():
    """An 8x8x16 latent: the sum is 1,024 times the mean (the scale the paper's alpha_P was set for)."""
    pred = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 16))
    target = jnp.zeros_like(pred)
    valid = jnp.ones((3,))
    total = objectives.transition_loss(pred, target, valid, "sum")
    mean = objectives.transition_loss(pred, target, valid, "mean")
    np.testing.assert_allclose(total, 1024 * mean, rtol=1e-5)
    assert pjs_config("Breakout-MinAtar", "deepspi").world_model.transition_reduction == "mean"
    if HAS_ENVPOOL:
        assert pjs_config("Breakout-v5", "deepspi").world_model.transition_reduction == "sum"  # the mixture head


def pjs_config(env_id, algo):
    from purejaxspi.algo.config import make_config

    return make_config(env_id, algo)


def test_the_clipped_value_loss_is_the_larger_of_the_two_squared_errors():
    """gymnax-blines' (and CleanRL's clip_vloss) value loss, sample by sample: V may move at most
    clip_coef from the rollout's value before the clipped error takes over."""
    x = tiny_inputs()
    old = jnp.array([1.05, 0.5, 1.0, -1.0])
    clipped = algo_loss("ppo", x._replace(old_value=old), HP)
    plain = algo_loss("ppo", x, HP)
    v, r, o, eps = np.asarray(x.value), np.asarray(x.returns), np.asarray(old), HP.clip_coef
    v_clip = o + np.clip(v - o, -eps, eps)
    want = 0.5 * np.mean(np.maximum((v - r) ** 2, (v_clip - r) ** 2))
    np.testing.assert_allclose(clipped.value_loss, want, rtol=1e-6)
    np.testing.assert_allclose(plain.value_loss, 0.5 * np.mean((v - r) ** 2), rtol=1e-6)
    assert float(clipped.value_loss) > float(
        plain.value_loss
    )  # sample 1 moved 0.5 > eps, and its clipped error is larger
    np.testing.assert_allclose(clipped.total - plain.total, HP.vf_coef * (want - float(plain.value_loss)), rtol=1e-5)
