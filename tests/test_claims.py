"""Claims the docs make that no other test could fail on: Bonferroni over several pairs, the
sweep's own split being patient-disjoint, the placement and distributed rules, and W&B failing
in the middle of a run without stopping it."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from jcxr.results import Cell
from jcxr.stats import delong


def test_bonferroni_multiplies_by_the_number_of_pairs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    scores = [y * mu + rng.normal(size=400) for mu in (0.2, 0.4, 0.6, 0.8)]
    plain = delong(y, scores, correction="none")
    bonferroni = delong(y, scores, correction="bonferroni")
    upper = np.triu_indices(4, 1)
    np.testing.assert_allclose(bonferroni.p_adjusted[upper],
                               np.minimum(plain.p[upper] * 6, 1.0), rtol=1e-12)  # fmt: skip
    assert np.any(bonferroni.p_adjusted[upper] > plain.p[upper])  # not a no-op with 6 pairs


@pytest.mark.parametrize("subsample", [0, 120])
def test_the_sweeps_split_never_shares_a_patient(phantom_shards, subsample):
    from jcxr.data.shards import read_index
    from jcxr.train.inputs import label_data_for
    from tests.helpers import tiny_config

    config = tiny_config(phantom_shards)
    config.data.subsample_size = subsample
    data = label_data_for(config, phantom_shards, "Mass")
    patients = read_index(phantom_shards, 32).patient_ids
    sets = {name: set(patients[rows].tolist()) for name, rows in data.splits.items()}
    assert set(sets) == {"train", "val", "test"}
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"]
    assert not sets["val"] & sets["test"]
    # and a patient with two images really exists in the data, so the check can fail
    assert len(set(patients.tolist())) < len(patients)


def test_placement_auto_puts_small_cells_side_by_side(monkeypatch):
    from jcxr.train import sweep

    config = SimpleNamespace(parallel=SimpleNamespace(placement="auto", per_device_below=224))
    small, large = Cell("Mass", 128, "resnet34", 0), Cell("Mass", 320, "resnet34", 0)
    assert sweep.placement(config, small, 4) == "per_device"
    assert sweep.placement(config, large, 4) == "data_parallel"
    assert sweep.placement(config, small, 1) == "data_parallel"  # one device: nothing to share
    config.parallel.placement = "data_parallel"
    assert sweep.placement(config, small, 4) == "data_parallel"
    config.parallel.placement = "per_device"
    assert sweep.placement(config, large, 4) == "per_device"
    monkeypatch.setattr(sweep.jax, "process_count", lambda: 2)
    assert sweep.placement(config, small, 4) == "data_parallel"  # several processes


def test_distributed_starts_for_slurm_and_explicit_coordinates_only(monkeypatch):
    from jcxr.train import parallel

    calls = []
    monkeypatch.setattr(parallel.jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(parallel.jax.distributed, "initialize",
                        lambda **kwargs: calls.append(kwargs))  # fmt: skip
    for key in ("SLURM_NTASKS", "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(key, raising=False)
    parallel.initialize("auto")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    parallel.initialize("auto")
    assert calls == []  # one process: nothing to start
    monkeypatch.setenv("SLURM_NTASKS", "4")
    parallel.initialize("auto")
    assert calls == [{}]  # SLURM with 4 tasks: JAX reads the cluster itself
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    parallel.initialize("auto")
    assert calls[-1] == {"coordinator_address": "10.0.0.1:1234", "num_processes": 2,
                         "process_id": 1}  # fmt: skip
    parallel.initialize("off")
    assert len(calls) == 2


def test_wandb_failing_mid_run_never_stops_training(phantom_shards, tmp_path, monkeypatch):
    """Every W&B log call raises after the run started (a network drop): the sweep finishes,
    says W&B failed, and its cells are those of a run without W&B."""
    import wandb

    from jcxr.train.sweep import run_sweep
    from tests.helpers import tiny_config

    reference = run_sweep(tiny_config(phantom_shards, train__epochs=1), tmp_path / "plain")
    calls = []

    def broken_log(self, *args, **kwargs):
        calls.append(1)
        raise ConnectionError("W&B service went away")

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", broken_log)
    config = tiny_config(phantom_shards, train__epochs=1)
    config.logging.wandb = "offline"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_sweep(config, tmp_path / "broken")
    assert calls, "the patched log was never reached: the test would prove nothing"
    assert any("W&B log failed" in str(w.message) for w in caught)
    (cell,) = result.cells
    assert cell.done and cell.metrics == reference.cells[0].metrics
