"""A checkpoint written in parts by several processes: a folder with one `paddle.save`d file per part and a manifest.

    model_0000999/
      replicated.pdparams       # the main part, written by rank 0: replicated model and optimizer entries and every
                                # other entry of a training checkpoint (iteration, scheduler, loader, RNG, ...)
      experts.<task>.pdparams   # further parts (oneforall's task-MoE: one task's experts, gates, optimizer state),
                                # each {"model": {...}, "optimizer": {...}}, written by the rank that holds it
      manifest.json             # written last: the parts, their files, writer ranks and key lists

Each part's file is written to a temporary name and renamed; the manifest is written (the same way) only after every
process has written its parts, so a folder without a manifest, or with a manifest naming a file that is not there,
is an interrupted save and never read. Merging the "model" (and "optimizer") dicts of all parts gives the state of
one file holding everything (`read_parts`, `consolidate`); a reader that needs only some parts reads only their files.

    python -m allinone.modeling.sharded_checkpoint FOLDER OUTPUT.pdparams   # one file, the single-file layout
"""
import argparse
import json
import os
import sys

import paddle

from .checkpoint import CheckpointError

MANIFEST = "manifest.json"
MAIN_PART = "replicated"
FORMAT = "allinone.sharded_checkpoint"
MERGED = ("model", "optimizer")  # the entries whose dicts are split over the parts (the rest is in the main part)


class IncompleteCheckpointError(CheckpointError):
    """A sharded checkpoint folder whose save did not finish (no manifest) or lost a file; names what is missing."""


def part_file(part):
    return f"{part}.pdparams"


def is_sharded(path):
    """True when `path` is a folder meant as a sharded checkpoint (it has a manifest or a main part: complete or
    not; an output folder of single-file checkpoints is not one)."""
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, name))
                                       for name in (MANIFEST, part_file(MAIN_PART)))


def describe_part(part, state, rank):
    """The manifest entry of one written part: its file, writer rank and key lists."""
    return {"file": part_file(part), "rank": int(rank),
            "keys": {name: sorted(state.get(name) or {}) for name in MERGED}}


def missing_files(path):
    """The files a complete checkpoint at `path` would have and does not: [] when complete."""
    manifest = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest):
        return [manifest]
    parts = read_manifest(path)["parts"]
    return [os.path.join(path, entry["file"]) for entry in parts.values()
            if not os.path.isfile(os.path.join(path, entry["file"]))]


def check_complete(path):
    """Raise IncompleteCheckpointError naming the missing manifest or part file(s) of the folder `path`."""
    missing = missing_files(path)
    if not missing:
        return
    if missing[0].endswith(MANIFEST):
        present = sorted(name for name in os.listdir(path)) if os.path.isdir(path) else []
        raise IncompleteCheckpointError(f"{path}: incomplete checkpoint: {missing[0]} is missing (the save was "
                                        f"interrupted before every process had written its part; files present: "
                                        f"{present}); use an earlier checkpoint of the run")
    writers = {os.path.join(path, entry["file"]): entry["rank"] for entry in read_manifest(path)["parts"].values()}
    raise IncompleteCheckpointError(f"{path}: incomplete checkpoint: missing " + ", ".join(
        f"{file} (written by rank {writers[file]})" for file in missing) + "; use an earlier checkpoint of the run")


def read_manifest(path):
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as err:
        raise IncompleteCheckpointError(f"{os.path.join(path, MANIFEST)}: cannot read the manifest "
                                        f"({type(err).__name__}: {err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or MAIN_PART not in manifest.get("parts", {}):
        raise CheckpointError(f"{os.path.join(path, MANIFEST)} is not a sharded-checkpoint manifest (expected "
                              f"format '{FORMAT}' and a '{MAIN_PART}' part)")
    return manifest


def read_parts(path, parts=None, entries=None):
    """The state of the complete checkpoint folder `path` from the files of `parts` (default all; the main part is
    always read): the main part's entries, with the "model" and "optimizer" dicts of every read part merged.
    `entries`: only these top-level entries (e.g. ("model",)). Every part's keys are checked against the manifest."""
    check_complete(path)
    manifest = read_manifest(path)
    known = manifest["parts"]
    parts = list(known) if parts is None else [MAIN_PART, *(part for part in parts if part != MAIN_PART)]
    unknown = [part for part in parts if part not in known]
    if unknown:
        raise CheckpointError(f"{path}: no part(s) {unknown} in its manifest; it has {sorted(known)}")
    state = {}
    for part in parts:
        file = os.path.join(path, known[part]["file"])
        try:
            content = paddle.load(file)
        except Exception as err:  # noqa: BLE001  (paddle raises many kinds on a torn or foreign file)
            raise CheckpointError(f"{file}: cannot read this part of the checkpoint ({type(err).__name__}: "
                                  f"{err}); is it truncated?") from None
        for name in MERGED:
            got, expected = sorted(content.get(name) or {}), known[part]["keys"][name]
            if got != expected:
                raise CheckpointError(f"{file}: its '{name}' keys differ from the manifest's (file has {len(got)}, "
                                      f"manifest {len(expected)}; e.g. "
                                      f"{sorted(set(got) ^ set(expected))[:3]})")
            if entries is None or name in entries:
                _merge(state.setdefault(name, {}), content.get(name) or {}, f"{file}: '{name}'")
        if part == MAIN_PART:
            state.update({key: value for key, value in content.items()
                          if key not in MERGED and (entries is None or key in entries)})
    return state


def _merge(into, part, where):
    """Add the entries of `part` to `into`; a key in both is an error, except dicts (the optimizer's
    `master_weights`), merged one level down."""
    for key, value in part.items():
        if key not in into:
            into[key] = value
        elif isinstance(into[key], dict) and isinstance(value, dict):
            _merge(into[key], value, f"{where}[{key}]")
        else:
            raise CheckpointError(f"{where}: key '{key}' is in another part of the checkpoint too")


def consolidate(path, output):
    """Write the complete checkpoint folder `path` as one file `output` (the single-file layout: every part's model
    and optimizer entries in one dict). Returns `output`. Reads every part: needs the whole state in host memory."""
    state = read_parts(path)
    paddle.save(state, output)
    return output


def main(argv=None):
    """The consolidation command (exit codes as every entry point: 0 done, 2 bad input)."""
    from ..utils.cli import run_cli, writable_file

    parser = argparse.ArgumentParser(prog="python -m allinone.modeling.sharded_checkpoint",
                                     description="write a sharded checkpoint folder as one checkpoint file")
    parser.add_argument("folder", help="a complete sharded checkpoint folder (with manifest.json)")
    parser.add_argument("output", help="the file to write (e.g. model_final.pdparams)")
    args = parser.parse_args(argv)

    def run(args):
        if not is_sharded(args.folder):
            raise CheckpointError(f"{args.folder} is not a sharded checkpoint folder (no {MANIFEST})")
        writable_file(args.output)
        consolidate(args.folder, args.output)
        print(f"wrote {args.output} from the {len(read_manifest(args.folder)['parts'])} parts of {args.folder}")

    return run_cli(run, args)


__all__ = ["IncompleteCheckpointError", "MAIN_PART", "MANIFEST", "check_complete", "consolidate", "describe_part",
           "is_sharded", "missing_files", "part_file", "read_manifest", "read_parts"]


if __name__ == "__main__":
    sys.exit(main())
