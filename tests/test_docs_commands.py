"""Every command line that README.md and docs/*.md show (```bash / ```sh blocks) runs as the table below says.

The table `COMMANDS` is keyed by the command as written (continuation lines joined, trailing comment dropped, spaces
collapsed) and says how this test runs it:

  full    as written;
  tiny    with the listed (written -> run) substitutions: the tiny configs and checkpoints, CPU instead of GPUs,
          a few iterations instead of 100,000 (each substitution is visible in the table);
  help    only the command in `run` (`--help`, `make -n`): the command needs what this machine has not got;
  not run with the reason and the test file that covers what the command does instead.

Every line runs in its own `sh -c`, in order, in one temporary workspace (the checkout's files linked in, its own
`output/`), with the virtual environment's `bin` first on PATH (as after `. .venv/bin/activate`) and
FASTREID_DATASETS set to a copy of the miniature tree. A command in the docs without an entry fails
`test_every_documented_command_has_an_entry`; an entry no doc shows any more fails `test_no_stale_entries`.
To document a new command: add it to the table (the failure message prints the key to add).
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_FILES = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
SHELL_LANGUAGES = ("bash", "sh", "shell")

# the tiny stand-ins
TINY_EVAL = ("--config configs/allinone/tiny_eval.yaml "
             "--model_path tests/fixtures/spec/reference/tiny_upstream.pdparams")
TINY_TRAIN = "configs/allinone/tiny_demo.yaml -o Train.max_iter=2 -o Train.log_period=1"
TINY_MOE = "configs/oneforall/tiny_taskmoe_train.yaml -o Train.max_iter=2 -o Train.log_period=1"
CHECKPOINT = "output/tiny_demo/model_final.pdparams"  # written by the first tiny training command
IMAGES = "output/mini/Market-1501-v15.09.15/query/*.jpg"  # the shell expands it
RELEASED = ("allinone_vitlarge.pdmodel", "the released ViT-L checkpoint (1.2 GB) and test data are not here")
SUPERNET = ("a trained supernet / the original's checkpoints are not here; tests/oneforall/test_subnet_export.py, "
            "test_task_extract.py and test_moe_checkpoint.py run these commands on the reference supernets")
TRAFFIC = ("the traffic data and a trained traffic model are not here; tests/traffic trains and predicts on the "
           "miniature traffic tree (sh -n: the script parses)")


def full():
    return {"mode": "full"}


def tiny(*substitutions, why):
    return {"mode": "tiny", "substitutions": substitutions, "why": why}


def help_only(run, why, expect="usage"):
    return {"mode": "help", "run": run, "why": why, "expect": expect}


def not_run(why, covered_by):
    return {"mode": "not run", "why": why, "covered_by": covered_by}


COMMANDS = {
    # --- README.md: Quick start
    "make demo": help_only(
        "make -n demo && python tools/demo.py --help",
        "minutes of training; tests/engine/test_demo.py checks the demo's verdict and log lines", expect="demo.py"),
    "make test": help_only("make -n test", "the suite itself (running it here would recurse)", expect="pytest"),
    # --- README.md: Install
    "python3 -m venv .venv && . .venv/bin/activate": tiny(
        (" .venv", " fresh_venv"), ("-m venv", "-m venv --without-pip"),
        why="a new venv beside the checkout's (without pip: the install is not repeated here)"),
    "pip install -r requirements.txt && pip install -e .": not_run(
        "downloads and installs packages", "tests/test_install.py"),
    "pip install paddlepaddle-gpu==3.3.1 -i https://www.paddlepaddle.org.cn/packages/stable/cu118/": not_run(
        "CUDA wheels; no GPU here", "tests/test_install.py"),
    'UFO_DEVICE=gpu pip install -e ".[gpu]"': not_run("CUDA wheels; no GPU here", "tests/test_install.py"),
    # --- README.md: Evaluate the released model (and docs/evaluation.md)
    "export FASTREID_DATASETS=/data/test_datasets": tiny(
        ("/data/test_datasets", "output/mini"), why="the miniature tree instead of the released test data"),
    "python evaluation_script.py --model_path allinone_vitlarge.pdmodel": tiny(
        ("--model_path allinone_vitlarge.pdmodel", TINY_EVAL), why=RELEASED[1]),
    "python evaluation_script.py --model_path allinone_vitlarge.pdmodel --batchsize 8 --test_datasets CALFW": tiny(
        ("--model_path allinone_vitlarge.pdmodel", TINY_EVAL), why=RELEASED[1]),
    "python evaluation_script.py --model_path allinone_vitlarge.pdmodel --test_datasets Market1501,SOP "
    "--output eval.json --device gpu --num_workers 4": tiny(
        ("--model_path allinone_vitlarge.pdmodel", TINY_EVAL), ("--device gpu", "--device cpu"),
        ("--num_workers 4", "--num_workers 1"), why=RELEASED[1] + "; no GPU; 2 shared cores"),
    "python evaluation_script.py --model_path allinone_vitlarge.pdmodel --test_datasets Market1501,SOP "
    "--output output/eval.json --device gpu --num_workers 4 --batchsize 64": tiny(
        ("--model_path allinone_vitlarge.pdmodel", TINY_EVAL), ("--device gpu", "--device cpu"),
        ("--num_workers 4", "--num_workers 1"), why=RELEASED[1] + "; no GPU; 2 shared cores"),
    "MODEL_PATH=allinone_vitlarge.pdmodel sh scripts/test.sh --test_datasets LFW": tiny(
        ("MODEL_PATH=allinone_vitlarge.pdmodel",
         "MODEL_PATH=tests/fixtures/spec/reference/tiny_upstream.pdparams CONFIG=configs/allinone/tiny_eval.yaml"),
        why=RELEASED[1]),
    "python tools/make_mini_datasets.py output/mini": full(),
    "FASTREID_DATASETS=output/mini python evaluation_script.py --config configs/allinone/tiny_eval.yaml "
    "--model_path tests/fixtures/spec/reference/tiny_upstream.pdparams --device cpu": full(),
    # --- README.md: Train (and docs/training.md)
    "export FASTREID_DATASETS=/data/train_datasets": tiny(
        ("/data/train_datasets", "output/mini"), why="the miniature tree instead of the training data"),
    "sh scripts/train.sh configs/allinone/vitlarge_4tasks.yaml": tiny(
        ("configs/allinone/vitlarge_4tasks.yaml", TINY_TRAIN), ("sh scripts/", "NPROC=1 sh scripts/"),
        why="no GPU: one CPU process, tiny config, 2 iterations"),
    "FASTREID_DATASETS=/data/train_datasets sh scripts/train.sh configs/allinone/vitlarge_4tasks.yaml": tiny(
        ("/data/train_datasets", "output/mini"), ("configs/allinone/vitlarge_4tasks.yaml", TINY_TRAIN),
        ("sh scripts/", "NPROC=1 sh scripts/"), why="no GPU: one CPU process, tiny config, 2 iterations"),
    "GPUS=0,1,2,3 sh scripts/train.sh configs/allinone/vitlarge_4tasks.yaml -o Train.amp.enabled=true": tiny(
        ("configs/allinone/vitlarge_4tasks.yaml -o Train.amp.enabled=true",
         TINY_TRAIN + " -o Train.amp.enabled=false"), ("sh scripts/", "NPROC=1 sh scripts/"),
        why="no GPU: mixed precision is GPU-only (refused on CPU, tested in tests/engine/test_training_config.py)"),
    "NPROC=2 sh scripts/train.sh configs/allinone/tiny_demo.yaml": tiny(
        ("configs/allinone/tiny_demo.yaml", TINY_TRAIN + " -o Global.output_dir=output/two_processes"),
        why="2 iterations instead of 3000 (2 real processes), its own output folder"),
    'LAUNCH_ARGS="--nnodes 2 --master 10.0.0.1:8090 --rank 0" sh scripts/train.sh CONFIG': help_only(
        "python -m paddle.distributed.launch --help", "a second machine is not here: the launcher's options exist",
        expect="--nnodes"),
    'LAUNCH_ARGS="--nnodes 2 --master 10.0.0.1:8090 --rank 0" sh scripts/train.sh '
    'configs/allinone/vitlarge_4tasks.yaml': help_only(
        "python -m paddle.distributed.launch --help", "a second machine is not here: the launcher's options exist",
        expect="--master"),
    "sh scripts/train.sh configs/allinone/vitlarge_4tasks.yaml --resume": tiny(
        ("configs/allinone/vitlarge_4tasks.yaml", TINY_TRAIN.replace("max_iter=2", "max_iter=3")),
        ("sh scripts/", "NPROC=1 sh scripts/"),
        why="continues the tiny run of the commands above for one more iteration"),
    "python tools/train.py -c CONFIG --eval-only --resume output/.../model_final.pdparams": tiny(
        ("CONFIG", "configs/allinone/tiny_demo.yaml"), ("output/...", "output/tiny_demo"),
        why="the tiny run's checkpoint"),
    "python tools/export_model.py -c CONFIG --model_path model_final.pdparams --task task3 --output export/task3": tiny(
        ("CONFIG", "configs/allinone/tiny_demo.yaml"), ("model_final.pdparams", CHECKPOINT),
        why="the tiny run's checkpoint"),
    # --- README.md: Data
    "python -m allinone.data.check --files": full(),
    # --- README.md: GP-NAS predictor (and docs/gpnas.md)
    "python tools/make_gpnas_benchmark.py output/gpnas --truth": tiny(
        ("--truth", "--truth --train 100 --test 1000"),
        why="100 training and 1,000 test architectures instead of 500 and 99,500: the commands below run in seconds"),
    "python -m oneforall.gpnas cv --train output/gpnas/CCF_UFO_train.json --predictor ours --folds 5": full(),
    "python -m oneforall.gpnas fit-predict --train output/gpnas/CCF_UFO_train.json "
    "--test output/gpnas/CCF_UFO_test.json --out output/gpnas/CCF_UFO_submit_A.json --predictor ours": full(),
    "python -m oneforall.gpnas score --pred output/gpnas/CCF_UFO_submit_A.json "
    "--truth output/gpnas/CCF_UFO_test_truth.json": full(),
    "python -m oneforall.gpnas cv --train CCF_UFO_train.json [--predictor ours] [--folds 5] [--seed 0]": tiny(
        (" CCF_UFO", " output/gpnas/CCF_UFO"), ("[", ""), ("]", ""),
        why="the optional arguments given; the benchmark's files"),
    "python -m oneforall.gpnas fit-predict --train CCF_UFO_train.json --test CCF_UFO_test.json "
    "--out CCF_UFO_submit_A.json [--predictor baseline-fast|baseline-slow|ridge|ours] [--encoding NAME] "
    "[--seed 0]": tiny(
        (" CCF_UFO", " output/gpnas/CCF_UFO"),
        ("[--predictor baseline-fast|baseline-slow|ridge|ours]", "--predictor baseline-fast"),
        ("[--encoding NAME]", "--encoding onehot"), ("[--seed 0]", "--seed 0"),
        why="the baseline (the README runs ours), the one-hot encoding; the benchmark's files"),
    "python -m oneforall.gpnas score --pred CCF_UFO_submit_A.json --truth CCF_UFO_test_truth.json": tiny(
        (" CCF_UFO", " output/gpnas/CCF_UFO"), why="the benchmark's files"),
    # --- README.md: NAS (and docs/nas.md)
    "sh scripts/train.sh configs/oneforall/vitbase_chip_supernet.yaml": tiny(
        ("configs/oneforall/vitbase_chip_supernet.yaml", "configs/oneforall/tiny_chip_supernet.yaml "
         "-o Train.max_iter=2 -o Train.log_period=1 -o Global.output_dir=output/chip"), ("sh scripts/", "NPROC=1 sh scripts/"),
        why="the tiny chip supernet (same search space), 2 iterations on one CPU process"),
    "python -m oneforall.evaluate_subnets --model_path SUPERNET --sample 500 --seed 0 --output nas/": tiny(
        ("--model_path SUPERNET", "--config configs/oneforall/tiny_chip_supernet.yaml "
         "--model_path output/chip/model_final.pdparams"), ("--sample 500", "--sample 5"),
        ("--output nas/", "--output nas/ --latency_runs 2 --quiet"),
        why="the tiny supernet trained by the command before; 5 sub-networks, 2 timed runs each"),
    "python -m oneforall.gpnas search --measurements nas/measurements.json --budget-ms 4.0 --plot nas/pareto.png": tiny(
        ("--budget-ms 4.0", "--budget-ms 4.0 --predictor ridge --candidates 500"),
        why="5 measured codes: 'ours' needs 20 (tests/nas/test_search.py runs the search on 24)"),
    "make nas-demo": help_only(
        "make -n nas-demo && python tools/nas_demo.py --help",
        "a quarter hour of CPU; tests/nas cover each step", expect="nas_demo.py"),
    "FASTREID_DATASETS=demo_output/datasets python tools/train.py -c configs/oneforall/tiny_chip_supernet.yaml": tiny(
        ("demo_output/datasets", "output/mini"),
        ("tiny_chip_supernet.yaml", "tiny_chip_supernet.yaml -o Train.max_iter=2 -o Global.output_dir=output/chip2"),
        why="2 of the 400 iterations on the miniature tree"),
    # --- README.md: Configuration
    "python tools/train.py -c configs/allinone/tiny_demo.yaml -o Global.seed=1 -o Train.max_iter=100": tiny(
        ("-o Train.max_iter=100", "-o Train.max_iter=10 -o Global.output_dir=output/seed1"),
        why="10 iterations: the warm-up (a fraction of max_iter) fits any length"),
    # --- docs/training.md
    "python tools/make_mini_datasets.py demo_output/datasets --scale 6 --hard": full(),
    "FASTREID_DATASETS=demo_output/datasets python tools/train.py -c configs/allinone/tiny_demo.yaml": tiny(
        ("tiny_demo.yaml", "tiny_demo.yaml -o Train.max_iter=2 -o Global.output_dir=output/demo_tree"),
        why="2 of the 3000 iterations"),
    "python tools/train.py -c CONFIG --resume output/vitlarge_4tasks/model_0019999.pdparams": tiny(
        ("CONFIG", "configs/allinone/tiny_demo.yaml -o Train.max_iter=4"),
        ("output/vitlarge_4tasks/model_0019999.pdparams", CHECKPOINT),
        why="a checkpoint of the tiny run"),
    "python tools/train.py -c CONFIG --eval-only --resume output/vitlarge_4tasks/model_final.pdparams": tiny(
        ("CONFIG", "configs/allinone/tiny_demo.yaml"), ("output/vitlarge_4tasks", "output/tiny_demo"),
        why="the tiny run's checkpoint"),
    "python evaluation_script.py --model_path output/vitlarge_4tasks/model_final.pdparams": tiny(
        ("--model_path output/vitlarge_4tasks/model_final.pdparams",
         "--config configs/allinone/tiny_demo.yaml --model_path " + CHECKPOINT), why="the tiny run's checkpoint"),
    "python tools/export_model.py -c configs/allinone/vitlarge_4tasks.yaml --model_path model_final.pdparams "
    "--task task3 --output export/task3 [--format onnx] [--images a.jpg b.jpg]": tiny(
        ("configs/allinone/vitlarge_4tasks.yaml", "configs/allinone/tiny_demo.yaml"),
        ("model_final.pdparams", CHECKPOINT), ("[--format onnx] ", ""),
        ("[--images a.jpg b.jpg]", "--images " + IMAGES),
        why="the tiny run's checkpoint, the miniature Market1501 queries; Paddle format (docs/deploy.md's command "
            "runs the ONNX one)"),
    # --- README.md: Use it from Python / installed commands (and docs/deploy.md)
    "pip install .": not_run("installs the package", "tests/test_packaging.py"),
    "ufo-eval --config allinone/vitlarge_eval --model_path allinone_vitlarge.pdmodel --test_datasets LFW": tiny(
        ("ufo-eval", "python evaluation_script.py"), ("allinone/vitlarge_eval", "allinone/tiny_eval"),
        ("allinone_vitlarge.pdmodel", "tests/fixtures/spec/reference/tiny_upstream.pdparams"),
        why="its checkout form (the installed script: tests/test_packaging.py); " + RELEASED[1]),
    "ufo-export -c allinone/vitlarge_eval --model_path allinone_vitlarge.pdmodel --task task3 --output export/ "
    "--format onnx --images query1.jpg query2.jpg": tiny(
        ("ufo-export", "python tools/export_model.py"), ("allinone/vitlarge_eval", "allinone/tiny_eval"),
        ("allinone_vitlarge.pdmodel", "tests/fixtures/spec/reference/tiny_upstream.pdparams"),
        ("query1.jpg query2.jpg", IMAGES), why="its checkout form; " + RELEASED[1]),
    # --- README.md and docs/oneforall.md: OneForAll supernets (tests/oneforall run them on the reference supernets)
    "python -m oneforall.extract --config configs/oneforall/vitbase_chip_supernet.yaml --model_path supernet.pdparams "
    "--arch j111231321311311221231121111231000000 --output sub/model.pdparams": help_only(
        "python -m oneforall.extract --help", SUPERNET, expect="--arch"),
    "python evaluation_script.py --config sub/model.yaml --model_path sub/model.pdparams": not_run(
        SUPERNET, "tests/oneforall/test_subnet_export.py"),
    "python -m oneforall.extract --paddel_model_path release.pdmodel --task_name face": help_only(
        "python -m oneforall.extract --help", SUPERNET, expect="--task_name"),
    "python -m oneforall.convert_moe --tasks_dir ORIGINAL_OUTPUT_DIR --tasks face,person,veri --output moe.pdparams":
        help_only("python -m oneforall.convert_moe --help", SUPERNET, expect="--tasks_dir"),
    "python -m oneforall.param_count --config configs/oneforall/vithuge_task_moe.yaml": full(),
    "python -m oneforall.extract --paddle_model_path moe.pdparams --task_name task3 --config "
    "configs/oneforall/tiny_task_moe.yaml --output task3/model.pdparams": help_only(
        "python -m oneforall.extract --help", SUPERNET, expect="--paddle_model_path"),
    # --- docs/traffic.md: the traffic three-task model (its miniature tree: tests/traffic)
    "sh scripts/train.sh configs/traffic/vitbase_3tasks.yaml": help_only(
        "sh -n scripts/train.sh && python -m oneforall.traffic.train --help", TRAFFIC),
    "NPROC=2 sh scripts/train.sh configs/traffic/tiny_cpu.yaml": help_only(
        "sh -n scripts/train.sh && python -m oneforall.traffic.train --help", TRAFFIC),
    "python -m oneforall.traffic.train -c configs/traffic/tiny_cpu.yaml --root OUT [--resume] [--eval-only]": help_only(
        "python -m oneforall.traffic.train --help", TRAFFIC, expect="--eval-only"),
    "sh scripts/test.sh configs/traffic/vitbase_3tasks.yaml --model_path output/.../model_final.pdparams "
    "[--split test|val] [--output pred_results.json] [--root DATA_ROOT]": help_only(
        "sh -n scripts/test.sh && python -m oneforall.traffic.predict --help", TRAFFIC, expect="--split"),
    "python -m oneforall.traffic.predict -c CONFIG --model_path ...": help_only(
        "python -m oneforall.traffic.predict --help", TRAFFIC, expect="--model_path"),
    "python -m oneforall.traffic.score --pred pred_results.json --gt <root or track1_train_data> [--split val]":
        help_only("python -m oneforall.traffic.score --help", TRAFFIC, expect="--gt"),
    "sh scripts/finetune.sh NEW_DATA_ROOT [CHECKPOINT] [-o Train.max_iter=N ...]": help_only(
        "sh -n scripts/finetune.sh && python -m oneforall.traffic.train --help", TRAFFIC),
    "CONFIG=configs/traffic/tiny_cpu.yaml OUTPUT=output/ft sh scripts/finetune.sh /data/b_board "
    "output/traffic_tiny/model_final.pdparams": help_only(
        "sh -n scripts/finetune.sh && python -m oneforall.traffic.train --help", TRAFFIC),
    # --- README.md and docs/oneforall.md: task-MoE training
    "python tools/moe_demo.py": help_only(
        "python tools/moe_demo.py --help", "1.5 minutes of training; tests/moe_training runs its parts (training, "
        "gates, evaluation)", expect="--max_iter"),
    "python tools/make_mini_datasets.py OUT --oneforall": tiny(
        ("OUT", "output/mini_oneforall"), why="a named output folder"),
    "sh scripts/train.sh configs/oneforall/vithuge_taskmoe_24tasks.yaml": tiny(
        ("configs/oneforall/vithuge_taskmoe_24tasks.yaml", TINY_MOE + " -o Global.output_dir=output/readme_moe"),
        ("sh scripts/", "FASTREID_DATASETS=output/mini_oneforall NPROC=1 sh scripts/"),
        why="no GPU and no training data: the tiny task-MoE config on the miniature tree written above, 2 iterations"),
    "python tools/make_mini_datasets.py demo_output/datasets --oneforall --scale 6 --hard": full(),
    "FASTREID_DATASETS=demo_output/datasets python tools/train.py -c configs/oneforall/tiny_taskmoe_train.yaml": tiny(
        ("configs/oneforall/tiny_taskmoe_train.yaml", TINY_MOE), why="2 iterations instead of 600"),
    "NPROC=2 FASTREID_DATASETS=demo_output/datasets sh scripts/train.sh configs/oneforall/tiny_taskmoe_train.yaml": tiny(
        ("configs/oneforall/tiny_taskmoe_train.yaml", TINY_MOE + " -o Global.output_dir=output/moe_two_processes"),
        why="2 iterations instead of 600 (2 real processes, experts split), its own output folder"),
    "python tools/moe_demo.py --workdir moe_demo_output": help_only(
        "python tools/moe_demo.py --help", "1.5 minutes of training; tests/moe_training runs its parts",
        expect="--workdir"),
    "FASTREID_DATASETS=/data/train_datasets sh scripts/train.sh configs/oneforall/vithuge_taskmoe_24tasks.yaml "
    "-o Train.step.ranks_per_task=null": tiny(
        ("/data/train_datasets", "demo_output/datasets"), ("configs/oneforall/vithuge_taskmoe_24tasks.yaml", TINY_MOE),
        ("sh scripts/", "NPROC=1 sh scripts/"),
        why="no GPU and no training data: the tiny task-MoE config, one CPU process, 2 iterations"),
    'LAUNCH_ARGS="--nnodes 6 --master 10.0.0.1:8090 --rank 0" FASTREID_DATASETS=/data/train_datasets sh '
    'scripts/train.sh configs/oneforall/vithuge_taskmoe_24tasks.yaml': help_only(
        "python -m paddle.distributed.launch --help", "other machines are not here: the launcher's options exist",
        expect="--nnodes"),
    "sh scripts/train.sh configs/oneforall/vithuge_taskmoe_24tasks.yaml --resume": tiny(
        ("configs/oneforall/vithuge_taskmoe_24tasks.yaml", TINY_MOE.replace("max_iter=2", "max_iter=3")),
        ("sh scripts/", "FASTREID_DATASETS=demo_output/datasets NPROC=1 sh scripts/"),
        why="continues the tiny task-MoE run above for one more iteration"),
}


def strip_comment(line):
    """`line` without a trailing `# comment` (a # outside quotes, at the start or after a space)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def documented_commands():
    """OrderedDict command -> 'file:line' of its first appearance, for every shell block of the docs, in order."""
    commands = {}
    for doc in DOC_FILES:
        language, pending, start = None, "", 0
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            lines = f.read().splitlines()
        for number, line in enumerate(lines, 1):
            fence = line.strip()
            if fence.startswith("```"):
                language = fence[3:].strip() if language is None else None
                continue
            if language not in SHELL_LANGUAGES:
                continue
            text = strip_comment(line).rstrip()
            if not pending:
                start = number
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            command = " ".join((pending + text).split())
            pending = ""
            if command:
                commands.setdefault(command, f"{doc}:{start}")
    return commands


def command_to_run(command, entry):
    if entry["mode"] == "full":
        return command
    if entry["mode"] == "help":
        return entry["run"]
    for written, run in entry["substitutions"]:
        assert written in command, f"the substitution {written!r} no longer fits {command!r}"
        command = command.replace(written, run)
    return command


def test_every_documented_command_has_an_entry():
    missing = {command: where for command, where in documented_commands().items() if command not in COMMANDS}
    assert not missing, ("commands shown in the docs that tests/test_docs_commands.py does not run; add an entry to "
                         "COMMANDS for each:\n" + "\n".join(f"  {where}: {command!r}"
                                                            for command, where in missing.items()))


def test_no_stale_entries():
    stale = sorted(set(COMMANDS) - set(documented_commands()))
    assert not stale, f"entries of COMMANDS that no doc shows any more (remove or update them): {stale}"


def test_every_entry_says_how_and_why():
    for command, entry in COMMANDS.items():
        assert entry["mode"] in ("full", "tiny", "help", "not run"), command
        if entry["mode"] != "full":
            assert entry["why"], command
        if entry["mode"] == "not run":
            assert os.path.exists(os.path.join(ROOT, entry["covered_by"])), (command, entry["covered_by"])


def test_the_parser_joins_continuations_and_drops_comments(tmp_path):
    assert strip_comment('LAUNCH_ARGS="--a # b" sh x.sh   # note') == 'LAUNCH_ARGS="--a # b" sh x.sh   '
    assert strip_comment("# only a comment") == ""
    commands = documented_commands()
    assert "make demo" in commands and "make test" in commands
    joined = [c for c in commands if c.startswith("FASTREID_DATASETS=output/mini python evaluation_script.py")]
    assert joined and joined[0].endswith("--device cpu")


def make_workspace(path, mini_root):
    """The checkout's files linked into `path` (not .git, .venv or outputs), a copy of the miniature tree in
    output/mini."""
    skip = {".git", ".venv", "output", "demo_output", "export", "log", "fresh_venv", ".pytest_cache"}
    for name in os.listdir(ROOT):
        if name not in skip:
            os.symlink(os.path.join(ROOT, name), os.path.join(path, name))
    shutil.copytree(mini_root, os.path.join(path, "output", "mini"))


def command_env(workspace):
    env = dict(os.environ, FASTREID_DATASETS=os.path.join(workspace, "output", "mini"), PYTHONPATH=ROOT,
               OMP_NUM_THREADS="1", LOG_DIR=os.path.join(workspace, "log", "train"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    for var in [name for name in env if name.startswith("PADDLE_")]:
        del env[var]  # a test run inside a launched job must not join it
    env.pop("PYTHON", None)
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mini_root):
    """Every documented command, run once in document order in one workspace: command -> (run, CompletedProcess)."""
    workspace = str(tmp_path_factory.mktemp("docs_workspace"))
    make_workspace(workspace, mini_root)
    env = command_env(workspace)
    results = {}
    for command in documented_commands():
        entry = COMMANDS.get(command)
        if entry is None or entry["mode"] == "not run":
            continue
        run = command_to_run(command, entry)
        start = time.time()
        results[command] = (run, subprocess.run(["sh", "-c", run], cwd=workspace, env=env, capture_output=True,
                                                text=True, timeout=600))
        print(f"{time.time() - start:6.1f} s  {run}")
    return results


RUNNABLE = [command for command, entry in COMMANDS.items() if entry["mode"] != "not run"]


@pytest.mark.parametrize("command", RUNNABLE, ids=lambda command: re.sub(r"[^\w.=,-]+", "_", command)[:90])
def test_documented_command_runs(command, runs):
    if command not in runs:
        pytest.fail(f"{command!r} is in COMMANDS but no doc shows it (see test_no_stale_entries)")
    run, result = runs[command]
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{run!r} exited {result.returncode}:\n{output[-3000:]}"
    assert "Traceback" not in output, f"{run!r} printed a traceback:\n{output[-3000:]}"
    expect = COMMANDS[command].get("expect")
    if expect:
        assert expect in output, f"{run!r}: {expect!r} not in its output:\n{output[-2000:]}"
