"""Every family x algorithm (vector, MinAtar on both encoders, the mixture head, pgx, the gridworld,
Atari, a hyperparameter grid) reproduces its recorded short run: tests/golden.py records them."""

import json

import numpy as np
import pytest
from golden import CASES, GOLDEN, run_case

GOLDEN_RUNS = json.loads(GOLDEN.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name, env_id, algo, overrides, values, num_seeds, mapping", CASES, ids=[c[0] for c in CASES])
def test_a_short_run_reproduces_its_golden_metrics(name, env_id, algo, overrides, values, num_seeds, mapping):
    if env_id.endswith("-v5"):
        pytest.importorskip("envpool", reason="the Atari cases need envpool")
    metrics = run_case(env_id, algo, overrides, values, num_seeds, mapping)
    golden = GOLDEN_RUNS[name]
    assert sorted(metrics) == sorted(golden)
    for metric, recorded in golden.items():
        # the same program on the same machine: equal to float32 rounding
        np.testing.assert_allclose(metrics[metric], recorded, rtol=2e-6, atol=1e-7, err_msg=f"{name}: {metric}")
