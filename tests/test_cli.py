import subprocess
import sys

import pytest

import mvmr
from mvmr.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert mvmr.__version__ in capsys.readouterr().out


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "mvmr", "--help"], capture_output=True, text=True, check=True)
    assert "MV-MR" in out.stdout


def test_overrides_are_accepted_anywhere_among_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    """``KEY=VALUE`` before, between and after flags: all applied, in their order (the later value wins)."""
    assert main(["info", "data.batch_size=7", "--config", "distill_demo", "teacher.beta=2", "data.batch_size=9"]) == 0
    out = capsys.readouterr().out
    assert "batch_size: 9" in out and "beta: 2.0" in out and "efficientnet-lite0" in out
    # a stray word is an error that names it, whichever side of a flag it is on
    assert main(["info", "--config", "distill_demo", "teacher.beta=2", "stray"]) == 2
    assert "override 'stray': expected key=value" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["info", "teacher.beta=2", "--config", "distill_demo", "stray"])
    assert err.value.code == 2 and "unrecognized arguments: stray" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "runs/x.ckpt", "--out", "y", "data.batch_size=3"])  # export takes no overrides
    assert "unrecognized arguments: data.batch_size=3" in capsys.readouterr().err
