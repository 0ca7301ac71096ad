"""The ``ad-gym`` command line, called in-process through ``ad_gym.cli.main``."""

import json
from dataclasses import fields

import numpy as np
import pytest

import ad_gym
from ad_gym.cli import main
from ad_gym.presets import PRESETS
from ad_gym.sources.sb3 import SourceConfig
from ad_gym.training import TrainConfig
from ad_gym.sources.collect import MANIFEST

TINY = ["--max-tasks", "1", "--steps", "400", "--streams", "2", "--workers", "1", "--no-progress"]


def run_cli(argv):
    """main(argv) -> exit code, whether it returns one or exits through argparse."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


@pytest.mark.parametrize("env_id", ["DarkRoom-v0", "ad_gym/DarkRoomHard-v0"])
def test_collect_prints_a_summary_then_summarize_reads_the_folder(env_id, tmp_path, capsys):
    out = tmp_path / "histories"
    assert run_cli(["collect", env_id, *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    plain_id = env_id.removeprefix("ad_gym/")
    assert f"1 task histories in {out} (0 already there, 1 collected now)" in printed
    assert f"{plain_id}: 1 tasks, 2 streams per task, 10 episodes per stream, source a2c" in printed
    assert "| episodes | mean return |" in printed and "optimal return" in printed
    [history] = ad_gym.load_histories(out, env_id=plain_id)
    assert history.task == ad_gym.tasks(plain_id, "train")[0] and history.n_streams == 2

    assert run_cli(["summarize", str(out), "--blocks", "2"]) == 0
    summary = capsys.readouterr().out
    assert summary.startswith(f"{plain_id}: 1 tasks") and summary.count("\n| ") == 4  # header, rule, 2 blocks

    # The same command again resumes: nothing to do, whatever else sits in the folder.
    np.savez(out / "unrelated.npz", x=np.zeros(2))
    assert run_cli(["collect", env_id, *TINY, "--out", str(out)]) == 0
    assert "(1 already there, 0 collected now)" in capsys.readouterr().out


def test_collect_options_reach_the_source(tmp_path, capsys):
    out = tmp_path / "h"
    argv = ["collect", "DarkRoom-v0", *TINY, "--out", str(out), "--split", "test", "--seed", "3", "--algo", "ppo",
            "--hp", "learning_rate=0.002", "--hp", 'policy_kwargs={"net_arch": [16]}']
    assert run_cli(argv) == 0
    capsys.readouterr()
    [history] = ad_gym.load_histories(out)
    source = history.metadata["source"]
    assert history.task == ad_gym.tasks("DarkRoom-v0", "test")[0] and history.metadata["seed"] == 3
    assert source["algo"] == "ppo" and source["hyperparams"] == {"learning_rate": 0.002, "policy_kwargs": {"net_arch": [16]}}


@pytest.mark.parametrize("command", [[], ["collect"], ["summarize"], ["run"], ["train"], ["evaluate"]])
def test_help_exits_0(command, capsys):
    assert run_cli([*command, "--help"]) == 0
    assert "usage: ad-gym" in capsys.readouterr().out


def test_version(capsys):
    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ad-gym {ad_gym.__version__}"


@pytest.mark.parametrize("command, config_class", [("train", TrainConfig), ("collect", SourceConfig)])
def test_help_lists_every_setting_with_its_default_and_meaning(command, config_class, capsys):
    assert run_cli([command, "--help"]) == 0
    out = capsys.readouterr().out
    for f in fields(config_class):
        assert f.metadata.get("help"), f"{config_class.__name__}.{f.name} has no help"
        assert f"  {f.name} = " in out and f.metadata["help"] in out


def test_run_help_lists_every_preset(capsys):
    assert run_cli(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for env_id, named in PRESETS.items():
        for name, preset in named.items():
            assert f"  {env_id} {name}: {', '.join(m.name for m in preset.methods)}" in out


@pytest.mark.parametrize("command", ["collect", "run", "train", "evaluate", "summarize"])
def test_every_subcommand_takes_no_progress(command, capsys):
    assert run_cli([command, "--help"]) == 0
    assert "--no-progress" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["collect", "DarkRom-v0"], "unknown env id 'DarkRom-v0'"),
        (["train", "histories/x", "--out", "runs/x", "--set", "bogus=1"],
         "unknown TrainConfig field(s) ['bogus']; valid fields: every_k, max_episodes"),
        (["collect", "DarkRoom-v0", "--hp", "learning_rate"], "--hp expects KEY=VALUE"),
        (["collect", "DarkRoom-v0", "--hp", "=1"], "--hp expects KEY=VALUE"),
        (["collect", "DarkRoom-v0", "--hp", "gamma_typo=0.9"], "['gamma_typo'] are not A2C arguments"),
        (["collect", "DarkRoom-v0", "--hp", "seed=1"], "may not set ['seed']"),
        (["collect", "DarkRoom-v0", "--hp", "n_steps=0"], "A2C argument n_steps must be > 0, got 0"),
        (["collect", "DarkRoom-v0", "--hp", "gamma=NaN"], "A2C argument gamma must be a finite number"),
        (["collect", "DarkRoom-v0", "--hp", "gamma=.99"], "not a JSON number; write e.g. 0.99"),
        (["collect", "DarkRoom-v0", "--hp", "gamma=true"], "gamma takes a number like its default 0.99, got True"),
        (["collect", "DarkRoom-v0", "--algo", "ppo", "--hp", "normalize_advantage=1"], "takes true or false, got 1"),
        (["collect", "DarkRoom-v0", "--algo", "dqn", "--hp", "buffer_size=1e5"], "takes a whole number"),
        (["collect", "DarkRoom-v0", "--max-tasks", "0"], "max_tasks must be a positive integer"),
        (["collect", "DarkRoom-v0", "--split", "val"], "unknown split 'val' for DarkRoom-v0"),
        (["collect", "DarkRoom-v0", "--algo", "ucb"], "UCB ignores observations"),
        (["collect", "DarkRoom-v0", "--streams", "0"], "n_streams must be a positive integer"),
        (["collect", "DarkRoom-v0", "--streams", "8", "--steps", "100"], "less than one DarkRoom-v0 episode (20 steps)"),
        (["collect", "DarkRoom-v0", "--workers", "0"], "workers must be a positive integer"),
        (["summarize", "/nonexistent/folder"], "no history file or folder"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(argv, message, capsys, tmp_path):
    out = ["--out", str(tmp_path / "out")] if argv[0] == "collect" else []
    assert run_cli([*argv, *out]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith(f"ad-gym {argv[0]}: error:")
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "argv, message",
    [
        (["collect", "DarkRoom-v0", "--algo", "sac"], "invalid choice: 'sac'"),
        (["collect", "DarkRoom-v0", "--steps", "many"], "invalid int value: 'many'"),
        (["collect"], "the following arguments are required: env_id"),
        (["fly"], "invalid choice: 'fly'"),
        (["evaluate", "runs/x", "--episodes", "0"], "--episodes: expected a positive integer, got 0"),
        (["evaluate", "runs/x", "--seeds", "-1"], "--seeds: expected a positive integer, got -1"),
        (["collect", "DarkRoom-v0", "--seed", "-1"], "--seed: expected a non-negative integer, got -1"),
        (["collect", "DarkRoom-v0", "--out", ""], "--out: expected a folder path, got an empty string"),
        (["run", "--out", " "], "--out: expected a folder path, got an empty string"),
        (["run", "--seed", "x"], "--seed: expected a non-negative integer, got 'x'"),
        (["summarize", "runs/x", "--blocks", "two"], "--blocks: expected a positive integer, got 'two'"),
    ],
)
def test_argparse_errors_exit_2(argv, message, capsys):
    assert run_cli(argv) == 2
    assert message in capsys.readouterr().err


def test_summarize_an_empty_folder_exits_2(tmp_path, capsys):
    assert run_cli(["summarize", str(tmp_path)]) == 2
    assert "holds no history files" in capsys.readouterr().err


def test_collect_into_a_folder_of_other_settings_exits_2(tmp_path, capsys):
    out = str(tmp_path / "h")
    assert run_cli(["collect", "DarkRoom-v0", *TINY, "--out", out]) == 0
    assert run_cli(["collect", "DarkRoom-v0", *TINY[:2], "--steps", "200", *TINY[4:], "--out", out]) == 2
    assert "other settings" in capsys.readouterr().err


def test_a_collection_that_failed_before_any_task_leaves_its_folder_usable(tmp_path, capsys):
    out = tmp_path / "h"
    out.mkdir()
    (out / MANIFEST).write_text('{"env_id": "DarkRoom-v0", "split": "train", "seed": 0, "source": {"algo": "ppo"}}')
    assert run_cli(["collect", "DarkRoom-v0", *TINY, "--out", str(out)]) == 0  # no history file: new settings taken
    assert json.loads((out / MANIFEST).read_text())["source"]["algo"] == "a2c"


@pytest.mark.parametrize("text", ["[1, 2]", "3"])
def test_a_manifest_that_is_not_an_object_exits_2(tmp_path, capsys, text):
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / MANIFEST).write_text(text)
    assert run_cli(["collect", "DarkRoom-v0", *TINY, "--out", str(tmp_path / "h")]) == 2
    assert "is not a JSON object" in capsys.readouterr().err


def test_corrupt_collection_manifest_exits_2_naming_the_file(tmp_path, capsys):
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / MANIFEST).write_text("{oops")
    assert run_cli(["collect", "DarkRoom-v0", *TINY, "--out", str(tmp_path / "h")]) == 2
    assert f"{MANIFEST}' is not valid JSON" in capsys.readouterr().err


def test_bad_hp_value_exits_2_and_leaves_the_folder_usable(tmp_path, capsys):
    """A --hp value SB3 cannot use (here a string learning rate) exits 2 with a message before the
    folder is claimed, so the corrected command then runs in the same folder."""
    out = str(tmp_path / "h")
    code = run_cli(["collect", "DarkRoom-v0", *TINY, "--out", out, "--hp", "learning_rate=fast"])
    assert code == 2 and "learning_rate" in capsys.readouterr().err
    assert run_cli(["collect", "DarkRoom-v0", *TINY, "--out", out]) == 0


def test_evaluate_json_gives_the_figures_as_data(capsys):
    assert run_cli(["evaluate", "darkroom", "--episodes", "3", "--seeds", "1", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["env_id"] == "DarkRoom-v0" and report["tasks"] == 16 and report["seeds"] == 1
    (entry,) = report["methods"].values()
    assert entry["rows"] == 16 and len(entry["mean"]) == 3 and len(entry["ci95_half_width"]) == 3
    assert set(entry["iqm"]) == {"1"} and entry["iqm"]["1"]["low"] <= entry["iqm"]["1"]["iqm"] <= entry["iqm"]["1"]["high"]


@pytest.mark.parametrize("command", ["collect", "train"])
def test_an_output_folder_under_a_file_exits_2_with_one_line(command, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    out = str(tmp_path / "a-file" / "out")
    if command == "collect":
        argv = ["collect", "DarkRoom-v0", *TINY, "--out", out]
    else:
        assert run_cli(["collect", "DarkRoom-v0", *TINY, "--out", str(tmp_path / "h")]) == 0
        argv = ["train", str(tmp_path / "h"), "--out", out, "--set", "context_len=20", "--set", "seq_len=30",
                "--set", "updates=2", "--no-progress"]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ad-gym {command}: error:") and len(err.strip().splitlines()) == 1 and "a-file" in err
