"""``bumphunt selector train|apply`` on tiny synthetic inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bumphunt.cli import cli


def test_help_does_not_import_tensorflow() -> None:
    code = ("import sys; from click.testing import CliRunner; from bumphunt.cli import cli; "
            "r = CliRunner().invoke(cli, ['selector', 'train', '--help']); assert r.exit_code == 0, r.output; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_config_key_is_a_clean_error(tmp_path) -> None:  # noqa: ANN001
    cfg = tmp_path / "sel.yaml"
    cfg.write_text(yaml.safe_dump({"training": {"punzi_epoch": 3}}))
    r = CliRunner().invoke(cli, ["selector", "train", str(cfg)])
    assert r.exit_code != 0 and "training" in r.output and "punzi_epochs" in r.output
    assert "Traceback" not in r.output


def test_train_then_apply(tmp_path) -> None:  # noqa: ANN001
    from bumphunt.events import save_three_photon
    from bumphunt.toymc.three_photon import synthetic_data, synthetic_sample

    data_file = save_three_photon(tmp_path / "data_3g.root", synthetic_data(lumi_fb=0.05, seed=4))
    cfg = {
        "output": str(tmp_path / "out"),
        "data": [str(data_file)],
        "lumi_fb": 0.05,
        "synthetic": {"n_masses": 8, "n_per_mass": 150, "n_background": 6000, "seed": 3},
        "heldout": 1,
        "network": {"hidden_layers": 1, "units": 8},
        "training": {"pretrain_epochs": 1, "punzi_epochs": 3},
    }
    path = tmp_path / "sel.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(cli, ["selector", "train", str(path)])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["mean_sigma_min_pb"]) == {"punzi", "bce", "cut_based"}
    assert len(summary["per_mass"]["mass"]) == 8
    # data/MC comparison of the features and the output: same processes, so no gross disagreement
    chi2 = summary["data_mc_chi2"]
    assert set(chi2) >= {"E_recoil_cm", "punzi_net"}
    assert (tmp_path / "out" / "plots" / "datamc_punzi_net.png").is_file()
    assert (tmp_path / "out" / "plots" / "sensitivity_vs_mass.png").is_file()
    assert all(v["chi2"] / v["ndf"] < 5 for v in chi2.values()), chi2
    model = tmp_path / "out" / "model"
    ev, _ = synthetic_sample(masses=[2.0], n_per_mass=50, n_background=2000, seed=9)
    f = save_three_photon(tmp_path / "in_3g.root", ev)
    out = tmp_path / "applied.npz"
    r = CliRunner().invoke(cli, ["selector", "apply", str(model), str(f), "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = np.load(out)
    assert res["punzi_net"].shape == (3 * len(ev["E"]),)
    thr = json.loads((model / "metadata.json").read_text())["working_point"]["threshold"]
    np.testing.assert_array_equal(res["pass_punzi"].astype(bool), res["punzi_net"] > thr)
    r = CliRunner().invoke(cli, ["selector", "apply", str(tmp_path), str(f), "--out", str(out)])
    assert r.exit_code != 0 and "not a selector directory" in r.output


@pytest.mark.parametrize("bad", [{"loss": {"type": "gini"}}, {"heldout": -1}])
def test_config_validation(bad: dict, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(bad))
    r = CliRunner().invoke(cli, ["selector", "train", str(path)])
    assert r.exit_code != 0 and "Error" in r.output
