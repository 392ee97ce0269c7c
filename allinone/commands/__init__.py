"""The command-line programs, importable so that `pip install .` can install them as console scripts:
`ufo-eval` (evaluate), `ufo-train` (train), `ufo-export` (export); `ufo-gpnas` is `oneforall.gpnas.cli`.
`evaluation_script.py` and `tools/*.py` in the checkout are thin wrappers with the same command lines."""
