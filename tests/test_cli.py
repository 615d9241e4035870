import subprocess
import sys

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
