"""import_paddle's stderr stand-in drops only Paddle's OMP_NUM_THREADS banner and keeps forwarding afterwards (a
logging handler created while paddle imports holds it)."""
import io
import logging

from allinone.utils.env import _WithoutThreadBanner


def test_the_banner_goes_and_everything_else_stays_also_through_a_handler_made_meanwhile():
    real = io.StringIO()
    stand_in = _WithoutThreadBanner(real)
    print("WARNING: OMP_NUM_THREADS set to 2, not 1. The computation speed ...", file=stand_in)
    print("PLEASE USE OMP_NUM_THREADS WISELY.", file=stand_in)
    print("a real warning", file=stand_in)
    handler = logging.StreamHandler(stand_in)
    logger = logging.getLogger("quiet_start_test")
    logger.addHandler(handler)
    try:
        logger.warning("logged later")
    finally:
        logger.removeHandler(handler)
    assert real.getvalue() == "a real warning\nlogged later\n"
