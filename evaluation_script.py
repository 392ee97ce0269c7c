"""Evaluate an AllInOne checkpoint on the test sets of a config's evaluation table: `allinone.commands.evaluate`
(installed as `ufo-eval`), runnable from a checkout with the original's command line.

    python evaluation_script.py --model_path allinone_vitlarge.pdmodel [--test_datasets Market1501,SOP] [--vis DIR]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from allinone.commands.evaluate import DEFAULT_CONFIG, draw_pictures, main, parse_args, run  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main(prog="evaluation_script.py"))
