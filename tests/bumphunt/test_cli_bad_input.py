"""Every CLI subcommand, fed input a user can give it by mistake: one error line naming the file or value, exit 1,
no traceback, and no unexpected exception (those would reach the last-defence handler of ``bumphunt.cli.main``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bumphunt.cli import SUBCOMMANDS, cli


def _files(tmp: Path) -> dict[str, Path]:
    junk_root = tmp / "junk.root"
    junk_root.write_bytes(b"this is not a ROOT file\n" * 20)
    junk_json = tmp / "junk.json"
    junk_json.write_text("{not json")
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text("nonsense_key: 1\n")
    blocker = tmp / "a_file"
    blocker.write_text("x")
    return {"root": junk_root, "json": junk_json, "yaml": bad_yaml, "blocker": blocker}


#: (subcommand words, arguments with {root}/{json}/{yaml}/{blocker}/{missing} placeholders, text the error names)
CASES = [
    (["generate"], ["--config", "{yaml}", "--out", "{tmp}/gen"], "nonsense_key"),
    (["generate"], ["--out", "{blocker}/sub", "--samples", "signal", "--masses", "1.0", "--n-signal", "10"], "a_file"),
    (["preselect"], ["{root}", "--out", "{tmp}/pre"], "junk.root"),
    (["kinfit"], ["{root}", "--out", "{tmp}/kf"], "junk.root"),
    (["calibrate-photons"], ["{root}", "--out", "{tmp}/cal.json"], "junk.root"),
    (["selector", "train"], ["{yaml}", "--out", "{tmp}/sel"], "nonsense_key"),
    (["selector", "apply"], ["{missing}", "{root}", "--out", "{tmp}/app"], "missing"),
    (["signal-model", "build"], ["--signal", "{root}", "--out", "{tmp}/model.json"], "junk.root"),
    (["signal-model", "plot"], ["{json}", "--out", "{tmp}/plots"], "junk.json"),
    (["fit"], ["--mass", "1.0", "--data", "{root}"], "junk.root"),
    (["fit"], ["--mass", "1.0", "--signal-model", "{json}"], "junk.json"),
    (["export-pyhf"], ["--mass", "1.0", "--signal-model", "{json}", "--out", "{tmp}/ws.json"], "junk.json"),
    (["scan"], ["{yaml}", "--out", "{tmp}/scan"], "nonsense_key"),
    (["plot"], ["{json}", "--out", "{tmp}/plots"], "junk.json"),
    (["export-hepdata"], ["{json}", "--out", "{tmp}/hep"], "junk.json"),
    (["report"], ["{json}", "--out", "{tmp}/report"], "junk.json"),
    (["recast"], ["{json}", "--to", "hypercharge", "--out", "{tmp}/recast"], "junk.json"),
    (["inject"], ["{yaml}", "--masses", "1.0", "--out", "{tmp}/inj"], "nonsense_key"),
    (["project"], ["{yaml}", "--out", "{tmp}/proj"], "nonsense_key"),
    (["validate"], ["--checks", "nonsense", "--out", "{tmp}/val"], "nonsense"),
    (["demo"], ["--out", "{blocker}/sub", "--small"], "a_file"),
]


def test_every_subcommand_is_fed_bad_input() -> None:
    covered = {" ".join(words[:1]) for words, _, _ in CASES}
    assert covered == set(SUBCOMMANDS), f"subcommands without a bad-input case: {set(SUBCOMMANDS) - covered}"


@pytest.mark.parametrize(("words", "args", "named"), CASES, ids=[" ".join(c[0]) + f"-{i}" for i, c in enumerate(CASES)])
def test_bad_input_gives_one_named_error_line(words: list[str], args: list[str], named: str, tmp_path: Path) -> None:
    files = _files(tmp_path)
    subs = {**{k: str(v) for k, v in files.items()}, "tmp": str(tmp_path), "missing": str(tmp_path / "missing")}
    argv = [*words, *(a.format(**subs) for a in args)]
    result = CliRunner().invoke(cli, argv)
    text = result.output  # stdout and stderr as the user sees them
    assert result.exit_code in (1, 2), f"{argv}: exit {result.exit_code}\n{text}"
    assert isinstance(result.exception, SystemExit), f"{argv}: {type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, f"{argv}: expected one error line\n{text}"
    assert named in errors[0], f"{argv}: the error does not name {named!r}: {errors[0]}"
