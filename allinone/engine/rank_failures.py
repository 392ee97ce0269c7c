"""One rank's error, told by every rank: a multi-process training stops with the cause, not with a collective's
time-out.

When one rank raises (a `DataLoadingError` on data only it reads, any exception in its step), it exits; the other
ranks, waiting in a collective (the loss all-reduce, DataParallel's gradient all-reduce), then fail with gloo's or
NCCL's own error ("TIMEOUT self_rank = 0 pair_rank = 1") and Paddle's launcher stops the job and shows rank 0's log.
The cause was only in the failed rank's log. So a failing rank first writes one line into the shared output folder
(`rank<r>_error.txt`: iteration, error type and message), and a rank that fails with anything else than a user error
or a data error looks there for the rank that failed and reports that as its error. (Ranks on machines that do not
share Global.output_dir find no note and keep their own error.)
"""
import os
import time

from ..data.load_errors import DataLoadingError
from ..utils.cli import UserError

NOTE_NAME = "rank{rank}_error.txt"
WAIT_SECONDS = 5.0  # a rank that lost a collective waits this long for the failed rank's note


def note_path(folder, rank):
    return os.path.join(folder, NOTE_NAME.format(rank=rank))


def clear_note(folder, rank):
    """Remove this rank's note of an earlier run (before training: a note must be this run's)."""
    try:
        os.remove(note_path(folder, rank))
    except FileNotFoundError:
        pass


def write_note(folder, rank, iteration, err):
    """Record `err` of this rank; never raises (the original error matters more than the note)."""
    message = " ".join(str(err).split()) or type(err).__name__
    try:
        with open(note_path(folder, rank), "w", encoding="utf-8") as f:
            f.write(f"rank {rank} failed at iteration {iteration} with {type(err).__name__}: {message}\n")
    except OSError:
        pass


def other_rank_note(folder, rank, world_size, since, wait=WAIT_SECONDS):
    """(rank, note) of another rank that failed (the lowest-numbered one there) written after the time `since`
    (a note of an earlier run is not this one's), waiting up to `wait` seconds for one; None if there is none."""
    deadline = time.monotonic() + wait
    while True:
        for other in range(world_size):
            if other == rank:
                continue
            path = note_path(folder, other)
            try:
                if os.path.getmtime(path) >= since:
                    with open(path, encoding="utf-8") as f:
                        return other, f.read().strip()
            except OSError:
                pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


class RankFailure(UserError):
    """The training stopped on a rank's error: one `error:` line that names the rank and the cause."""


def run_reporting_rank_failures(train, folder, rank, world_size, iteration, is_user_error):
    """`train()`; with several ranks, an exception of this rank is noted in `folder` for the others.

    A user error (`is_user_error(err)`) becomes one line with the rank in front (`rank 1: <message>`); a
    `DataLoadingError` keeps its traceback. Any other exception may be this rank's own (a bug) or a collective that
    lost a rank that failed: if another rank's note turns up within `WAIT_SECONDS`, that note is this rank's error
    (and no note is written: it would repeat the other's), else it is noted and re-raised.
    `iteration()`: the current iteration.
    """
    if world_size == 1:
        return train()
    clear_note(folder, rank)
    started = time.time() - 1.0  # file times may be coarser than time.time()
    try:
        return train()
    except Exception as err:  # noqa: BLE001  (re-raised: a clearer error, or itself)
        if is_user_error(err) or isinstance(err, DataLoadingError):
            write_note(folder, rank, iteration(), err)
            if isinstance(err, DataLoadingError) and not is_user_error(err):
                raise
            raise RankFailure(f"rank {rank}: {err}") from err
        found = other_rank_note(folder, rank, world_size, started)
        if found is None:
            write_note(folder, rank, iteration(), err)
            raise
        other, note = found
        own = " ".join(str(err).split())[:300]
        raise RankFailure(f"{note} (so rank {rank} stopped too, with {type(err).__name__}: {own}); the failed "
                          f"rank's log: {os.path.join(folder, f'log_rank{other}.txt')}") from err
