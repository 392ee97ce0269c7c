"""Entry-point wrapper: errors about the user's input end in one `error:` line and exit code 1, no traceback."""
import sys

from ..config import ConfigError


def user_errors():
    """Exception types that describe bad input (config, data on disk, checkpoint) or a diverged run. Imported late:
    their modules import paddle, which entry points import only after setting the CPU threads."""
    from ..data.datasets.base import DatasetLayoutError
    from ..engine.trainer import NonFiniteLossError
    from ..modeling.checkpoint import CheckpointError

    return ConfigError, DatasetLayoutError, CheckpointError, FileNotFoundError, NonFiniteLossError


def run_cli(run, args):
    """`run(args)`; a user error is printed as one line and gives exit code 1, anything else propagates."""
    try:
        run(args)
    except Exception as err:  # noqa: BLE001  (re-raised unless it is a user error)
        if not isinstance(err, user_errors()):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
