"""A checkpoint that does not fit the model, reported in a few lines: counts and the first keys of each kind on
the console, the full list in a file (a 310-key mismatch is one unreadable 15 KB line otherwise)."""
import os
import tempfile

SHOWN_KEYS = 3


def key_report_path(checkpoint_path):
    """Where the full key list goes when the caller names no file: the temp folder, named after the checkpoint."""
    name = os.path.splitext(os.path.basename(checkpoint_path))[0] or "checkpoint"
    return os.path.join(tempfile.gettempdir(), f"{name}.keys.txt")


def summarise(report, key_file, shown=SHOWN_KEYS):
    """Lines like '310 key(s) of the model missing from the file, e.g. [a, b, c]' plus where the full list is."""
    kinds = (("key(s) of the model missing from the file", report.missing),
             ("key(s) in the file unknown to the model", report.unexpected),
             ("key(s) with a different shape", [f"{key} (model {model}, file {stored})"
                                                for key, model, stored in report.shape_mismatched]))
    lines = [f"{len(keys)} {what}, e.g. {keys[:shown]}" for what, keys in kinds if keys]
    lines.append(f"{len(report.loaded)} key(s) fit; the full list is in {key_file}")
    return lines


def write_key_file(report, key_file):
    """Every mismatched key, one per line, grouped by kind."""
    os.makedirs(os.path.dirname(os.path.abspath(key_file)), exist_ok=True)
    with open(key_file, "w", encoding="utf-8") as f:
        f.write(f"# checkpoint {report.path}\n")
        for kind, keys in (("missing", report.missing), ("unexpected", report.unexpected)):
            f.writelines(f"{kind}\t{key}\n" for key in keys)
        f.writelines(f"shape\t{key}\tmodel {model}\tfile {stored}\n" for key, model, stored in report.shape_mismatched)


def describe(report, key_file=None):
    """One short line for the log: the report itself when every key fits, else the summary (full list to a file)."""
    if report.ok:
        return str(report)
    key_file = key_file or key_report_path(report.path)
    write_key_file(report, key_file)
    return f"{report.path}: partial load; " + "; ".join(summarise(report, key_file))


def load_reporting_keys(load_checkpoint, model, path, strict=True, key_file=None):
    """`load_checkpoint(model, path, strict)` -> its KeyReport; when a strict load fails on keys, the error is
    summarised and the full list written to `key_file` (default: see key_report_path)."""
    from ..modeling.checkpoint import CheckpointError, compare_keys, read_state_dict

    try:
        return load_checkpoint(model, path, strict=strict)
    except CheckpointError:
        if not strict:
            raise
        report = compare_keys(model.state_dict(), read_state_dict(path), path)
        if report.ok:
            raise
    key_file = key_file or key_report_path(path)
    write_key_file(report, key_file)
    raise CheckpointError(f"checkpoint {path} does not fit the model (--allow_partial loads the matching keys "
                          f"anyway):\n  " + "\n  ".join(summarise(report, key_file)))
