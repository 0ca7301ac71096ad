"""The ad-gym command line."""

import pytest

from ad_gym.cli import main


def test_collect_then_summarize(tmp_path, capsys):
    out = tmp_path / "h"
    assert main(["collect", "DarkRoom-v0", "--max-tasks", "1", "--steps", "400", "--streams", "2", "--workers", "1",
                 "--no-progress", "--out", str(out), "--hp", "learning_rate=0.001"]) == 0
    printed = capsys.readouterr().out
    assert "1 task histories" in printed and "| episodes | mean return |" in printed and "optimal return" in printed
    assert main(["summarize", str(out)]) == 0
    assert "DarkRoom-v0: 1 tasks" in capsys.readouterr().out


@pytest.mark.parametrize("command", [[], ["collect"], ["run"], ["train"], ["evaluate"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0 and "usage: ad-gym" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["collect", "DarkRom-v0"], "unknown env id 'DarkRom-v0'"),
        (["collect", "DarkRoom-v0", "--hp", "learning_rate"], "--hp expects KEY=VALUE"),
        (["collect", "DarkRoom-v0", "--hp", "gamma_typo=0.9"], "not A2C arguments"),
        (["collect", "DarkRoom-v0", "--max-tasks", "0"], "max_tasks"),
        (["summarize", "/nonexistent/folder"], "no history file or folder"),
        (["evaluate", "/nonexistent/model.pt"], "no checkpoint"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, *(["--out", str(tmp_path / "o")] if argv[0] == "collect" else [])])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
