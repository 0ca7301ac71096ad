"""The README's Python snippets run as written, in order, in one session, and show AD learning in context."""

import re
from pathlib import Path

import numpy as np

from ad_gym.sources.collect import collect
from ad_gym.sources.sb3 import SourceConfig

README = Path(__file__).resolve().parent.parent / "README.md"


def python_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_snippets():
    assert len(python_snippets()) >= 5


def test_every_snippet_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # What the README's `ad-gym collect ... --out histories/dr` command makes, on a tiny budget.
    collect("DarkRoom-v0", "histories/dr", split="train", config=SourceConfig(n_streams=2, total_steps=400),
            max_tasks=2, workers=1, progress=False)
    session: dict = {}
    for snippet in python_snippets():
        exec(compile(snippet, str(README), "exec"), session)
    printed = capsys.readouterr().out
    # The quickstart prints one return per episode: later episodes beat the first ones.
    quickstart = [float(r) for r in re.findall(r"episode \d+: return (\d+)", printed)]
    assert len(quickstart) == 40 and np.mean(quickstart[-10:]) > np.mean(quickstart[:10]) + 3
    # The evaluate_policy snippet: the last episodes of each context beat the first ones.
    returns = session["returns"]
    assert len(returns) == 80 and np.mean(returns[-10:]) > np.mean(returns[:10]) + 3
