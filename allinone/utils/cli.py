"""What every command-line entry point shares: one exit-code convention, argument types that refuse nonsense,
one-line `error:` messages instead of tracebacks for the user's mistakes, and quiet third-party start-up.

Exit codes (docs/cli.md): 0 success; 2 the user's input is wrong (command line, config, data on disk, checkpoint,
output path), with one `error:` line on stderr, as argparse does for a bad command line; 1 anything else (a bug:
the traceback is kept).
"""
import argparse
import errno
import logging
import os
import sys
import tempfile
import warnings

from ..config import ConfigError

USER_ERROR = 2


class UserError(ValueError):
    """A mistake in what the user asked for that no config file holds (e.g. an output path that cannot be written)."""


def at_least(minimum):
    """argparse type: an integer >= `minimum` (the message names the bound and the value given)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


positive_int = at_least(1)  # argparse type: an integer >= 1
non_negative_int = at_least(0)  # argparse type: an integer >= 0


def user_errors():
    """Exception types that describe bad input (config, data on disk, checkpoint, output path) or a diverged run.
    Imported late: their modules import paddle, which entry points import only after setting the CPU threads."""
    from ..data.datasets.base import DatasetLayoutError
    from ..data.io import ImageReadError
    from ..engine.trainer import NonFiniteLossError
    from ..evaluation.evaluators import NonFiniteOutputError
    from ..modeling.checkpoint import CheckpointError

    return (ConfigError, UserError, DatasetLayoutError, ImageReadError, CheckpointError, FileNotFoundError,
            NonFiniteLossError, NonFiniteOutputError)


def run_cli(run, args):
    """`run(args)`; a user error is printed as one `error:` line and gives exit code USER_ERROR, anything else
    propagates (a traceback: a bug to report)."""
    try:
        run(args)
    except Exception as err:  # noqa: BLE001  (re-raised unless it is a user error)
        if not isinstance(err, user_errors()):
            raise
        print(f"error: {first_line(err)}", file=sys.stderr)
        return USER_ERROR
    return 0


def first_line(err):
    """The message of an error; a multi-line message keeps its lines (they are the user's details)."""
    return str(err).strip() or type(err).__name__


def writable_file(path, what="--output"):
    """Make sure `path` can be written before hours of work (its folder is created); raise UserError if not."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        if os.path.isdir(path):
            raise IsADirectoryError(21, "is a folder", path)
        probe = os.path.join(folder, f".{os.path.basename(path)}.probe{os.getpid()}")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
    except OSError as err:
        raise UserError(f"{what} {path}: cannot write there ({err.strerror or err})") from None
    return path


def writable_dir(path, what="Global.output_dir"):
    """Make sure the folder `path` exists (created) and takes a file, before any work; raise UserError if not (a
    file where a folder should be, a read-only file system, no permission)."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UserError(f"{what} {path}: cannot write there ({err.strerror or err})") from None
    return path


# OSError codes of a write that the output folder refuses: a full disk or quota, a read-only file system, no
# permission, a file where a folder should be
OUTPUT_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                       errno.EEXIST)


def output_write_error(err, folder, what="Global.output_dir"):
    """A UserError for `err` when it is an OSError of a write into `folder` (a full disk anywhere counts: nothing
    else raises it), else None (a bug, or a data file, which has its own error)."""
    if not isinstance(err, OSError) or err.errno not in OUTPUT_WRITE_ERRNOS:
        return None
    filename = os.path.abspath(err.filename) if isinstance(err.filename, str) else None
    inside = filename is not None and filename.startswith(os.path.abspath(folder) + os.sep)
    if err.errno not in (errno.ENOSPC, errno.EDQUOT) and not inside:
        return None
    return UserError(f"{what} {folder}: writing {filename or 'a file'} failed ({err.strerror or err}); no partial file "
                     f"is left behind")


def write_text_atomically(path, text, what="--output"):
    """Write `text` to `path` through a temporary file, so a full disk leaves no partial file; UserError if the
    write fails."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise UserError(f"{what} {path}: writing failed ({err.strerror or err})") from None


def quiet_third_party():
    """Silence start-up chatter that is not the user's business: faiss's CPU-feature loader lines, Paddle's
    ccache / OMP notices and glog INFO lines, and pkg_resources deprecation warnings from paddleslim. Call before
    importing paddle or faiss; messages that report a real problem (warnings about the user's data) stay."""
    os.environ.setdefault("GLOG_minloglevel", "2")       # Paddle's C++ INFO/WARNING lines
    os.environ.setdefault("FLAGS_call_stack_level", "1")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    logging.getLogger("faiss").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*pkg_resources is deprecated.*")
    warnings.filterwarnings("ignore", message=r"Setuptools is replacing distutils")
    warnings.filterwarnings("ignore", message=r".*ccache.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pkg_resources.*")
    # Paddle's BatchNorm notes on every training run that it tracks global statistics (as it should)
    warnings.filterwarnings("ignore", message=r"When training, we now always track global mean and variance")
