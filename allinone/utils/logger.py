"""One logging set-up for every entry point: rank 0 prints to the console, every rank writes its own file."""
import logging
import os
import sys

from .env import get_rank

FORMAT = "[%(asctime)s %(name)s %(levelname)s] %(message)s"
DATEFMT = "%m/%d %H:%M:%S"


def setup_logger(output_dir=None, name="allinone", rank=None, level=logging.INFO):
    """Configure the `name` logger (and `oneforall`): console on rank 0, `output_dir/log_rank{r}.txt` on every rank.

    Idempotent: calling it again replaces the handlers instead of adding duplicates.
    """
    rank = get_rank() if rank is None else rank
    formatter = logging.Formatter(FORMAT, datefmt=DATEFMT)
    handlers = []
    if rank == 0:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(formatter)
        handlers.append(console)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(output_dir, f"log_rank{rank}.txt"), encoding="utf-8")
        file_handler.setFormatter(formatter)
        handlers.append(file_handler)
    for logger_name in {name, "allinone", "oneforall"}:
        logger = logging.getLogger(logger_name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        for handler in handlers:
            logger.addHandler(handler)
        if not handlers:
            logger.addHandler(logging.NullHandler())
        logger.setLevel(level)
        logger.propagate = False
    return logging.getLogger(name)
