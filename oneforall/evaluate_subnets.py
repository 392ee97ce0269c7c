"""Measure sub-networks of a trained chip supernet: accuracy on the competition's 8 test sets, FLOPs, parameters and
latency, for GP-NAS.

    python -m oneforall.evaluate_subnets --config configs/oneforall/vitbase_chip_supernet.yaml \
        --model_path SUPERNET --archs codes.txt --output nas/          # or --sample 500 --seed 0

Each code's sub-network is set on the supernet (no weight copies) and evaluated with allinone's evaluation suite
on CPLFW, Market1501, DukeMTMC, MSMT17, VeRi, VehicleID (large), VeRi-Wild (large) and SOP; its score per task is
the evaluator's headline `metric`. Then the latency of every code is measured on the exported sub-network with
Paddle Inference (round robin over groups of codes, `oneforall.latency`), and FLOPs and parameters are counted.

Outputs in --output: `measurements.json` (the supernet's identity, the settings, and per code its scores, all
metrics, FLOPs, parameters and latency), rewritten atomically after every code, so a crash keeps what was done and
a rerun continues (it refuses a file made from another supernet or other settings); and `CCF_UFO_train.json`, the
competition's schema (ranks 0..N-1 per task from the scores), which `python -m oneforall.gpnas` reads.
"""
import argparse
import hashlib
import json
import logging
import os
import sys
import time
from collections import OrderedDict

logger = logging.getLogger("oneforall.evaluate_subnets")

# the competition's task -> the evaluation-table entry that measures it
COMPETITION_TEST_SETS = OrderedDict([
    ("cplfw", "CPLFW"), ("market1501", "Market1501"), ("dukemtmc", "DukeMTMC"), ("msmt17", "MSMT17"),
    ("veri", "VeRi"), ("vehicleid", "LargeVehicleID"), ("veriwild", "LargeVeRiWild"), ("sop", "SOP")])
SCORE_METRIC = "metric"
FORMAT = "oneforall-subnet-measurements/1"
MEASUREMENTS_FILE = "measurements.json"
COMPETITION_FILE = "CCF_UFO_train.json"


from allinone.utils.cli import UserError, non_negative_int, positive_int


class MeasurementsError(UserError):
    """A measurements file that does not belong to this run (another supernet, other settings) or is malformed."""


def file_sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def supernet_identity(cfg, model_path):
    """What makes the measurements valid: a hash of the backbone's config (the network and its search space) and
    a hash of the weights file."""
    backbone = json.dumps(cfg.Model.backbone.to_dict(), sort_keys=True, default=str)
    return {"backbone_config_sha256": hashlib.sha256(backbone.encode("utf-8")).hexdigest(),
            "weights_sha256": file_sha256(model_path)}


class MeasurementStore:
    """`measurements.json`: header (identity, settings) + one record per code, in measuring order. Every `put`
    rewrites the file through a temporary file and a rename, so it is never torn."""

    def __init__(self, path, identity, settings):
        self.path, self.identity, self.settings = path, identity, settings
        self.records = OrderedDict()
        if os.path.exists(path):
            self._load()

    def _load(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f, object_pairs_hook=OrderedDict)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise MeasurementsError(f"{self.path}: not a measurements file ({err})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise MeasurementsError(f"{self.path}: not a measurements file (expected format {FORMAT!r}, got "
                                    f"{data.get('format') if isinstance(data, dict) else type(data).__name__!r})")
        for section, expected in (("supernet", self.identity), ("settings", self.settings)):
            stored = data.get(section, {})
            differing = sorted(key for key in set(stored) | set(expected) if stored.get(key) != expected.get(key))
            if differing:
                details = "; ".join(f"{key}: file {stored.get(key)!r}, this run {expected.get(key)!r}"
                                    for key in differing)
                raise MeasurementsError(f"{self.path} was measured with another {section} ({details}); use another "
                                        f"--output folder, or remove the file to start over")
        self.records = OrderedDict(data.get("archs", {}))

    def __contains__(self, code):
        return code in self.records

    def put(self, code, **fields):
        self.records.setdefault(code, OrderedDict()).update(fields)

    def save(self):
        data = OrderedDict([("format", FORMAT), ("supernet", self.identity), ("settings", self.settings),
                            ("archs", self.records)])
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        temporary = f"{self.path}.tmp{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)


def read_measurements(path):
    """(codes [N], scores {task: [N]}, records) of a measurements file, in its order."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f, object_pairs_hook=OrderedDict)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise MeasurementsError(f"{path}: not a measurements file of oneforall.evaluate_subnets")
    return data


def write_competition_json(records, path):
    """The competition's training file from the scores: ids arch1.. in measuring order, ranks 0..N-1 per task
    (higher score, higher rank; ties by order). Needs at least 2 codes with scores."""
    import numpy as np

    from .gpnas.data import TASKS, RankingSet, scores_to_ranks, write_ranking_json

    scored = [(code, record) for code, record in records.items() if "scores" in record]
    if len(scored) < 2:
        return None
    scores = np.array([[record["scores"][task] for task in TASKS] for _, record in scored], dtype=np.float64)
    ranks = scores_to_ranks(scores)
    ids = [f"arch{index + 1}" for index in range(len(scored))]
    write_ranking_json(path, RankingSet(ids, np.array([code for code, _ in scored]), ranks))
    return path


def read_codes(path):
    """Codes from a text file (one per line, '#' comments) or from a competition JSON (its architectures)."""
    if path.endswith(".json"):
        from .gpnas.data import read_ranking_json

        return [str(code) for code in read_ranking_json(path).codes]
    codes = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            code = line.split("#", 1)[0].strip()
            if code:
                codes.append((code, number))
    seen = {}
    for code, number in codes:
        if code in seen:
            raise MeasurementsError(f"{path}: line {number} repeats the code of line {seen[code]} ({code})")
        seen[code] = number
    return [code for code, _ in codes]


def sample_codes(space, count, seed):
    """`count` distinct codes drawn step-seeded from `space` (draws k = 0, 1, ... of `seed`, repeats skipped)."""
    from .chip_training import SubnetSampler
    from .subnet_codes import subnet_code

    sampler, codes = SubnetSampler(seed), OrderedDict()
    while len(codes) < count:
        if sampler.draws > 100 * count + 1000:
            raise MeasurementsError(f"--sample {count}: the search space has fewer distinct sub-networks")
        codes.setdefault(subnet_code(sampler.draw(space)), None)
    return list(codes)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m oneforall.evaluate_subnets", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/oneforall/vitbase_chip_supernet.yaml", help="supernet config")
    parser.add_argument("--model_path", required=True, help="supernet weights (a training checkpoint or state dict)")
    codes = parser.add_mutually_exclusive_group(required=True)
    codes.add_argument("--archs", help="codes to measure: a text file (one 37-character code per line) or a "
                                       "competition JSON")
    codes.add_argument("--sample", type=positive_int, help="measure this many distinct step-seeded random sub-networks")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample")
    parser.add_argument("--output", required=True, help=f"folder for {MEASUREMENTS_FILE} and {COMPETITION_FILE}")
    parser.add_argument("--batch_size", type=positive_int, default=None, help="evaluation batch size (default Eval's)")
    parser.add_argument("--no_latency", action="store_true", help="accuracy, FLOPs and parameters only")
    parser.add_argument("--latency_threads", type=positive_int, default=1)
    parser.add_argument("--latency_runs", type=positive_int, default=60, help="timed runs per code (the median is kept)")
    parser.add_argument("--latency_warmup", type=non_negative_int, default=5)
    parser.add_argument("--latency_batch", type=positive_int, default=1, help="images per timed run")
    parser.add_argument("--latency_group", type=positive_int, default=10,
                        help="codes timed together round robin (one load change hits all of them alike)")
    parser.add_argument("--latency_device", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def build_supernet(args):
    """(cfg, model) with the weights loaded strictly and the model in eval mode."""
    from allinone.config import ConfigError, load_config
    from allinone.modeling import build_model
    from allinone.modeling.checkpoint import load_checkpoint

    from .chip_training import supernet_of, uses_supernet

    cfg = load_config(args.config, args.override)
    if not uses_supernet(cfg):
        raise ConfigError(f"{args.config}: Model.backbone.name is {cfg.get_path('Model.backbone.name')!r}, not a "
                          f"chip supernet")
    for head in cfg.Model.heads.values():
        head.num_classes = 0  # evaluation model: the classifiers of a training checkpoint are skipped
    model = build_model(cfg)
    load_checkpoint(model, args.model_path, strict=True)
    supernet_of(model)
    return cfg, model.eval()


def competition_suite(cfg, batch_size=None, root=None):
    """allinone's EvaluationSuite over the competition's 8 test sets of the config's evaluation table (data root
    `root`, default $FASTREID_DATASETS)."""
    from allinone.evaluation.suite import EvaluationSuite

    return EvaluationSuite(cfg, ",".join(COMPETITION_TEST_SETS.values()), batch_size=batch_size, root=root,
                           print_table=False)


def evaluate_code(model, suite):
    """({task: score}, {flat key: value}) of the model's current sub-network on the suite's test sets."""
    from allinone.evaluation.suite import evaluate_test_set, flat_results

    results = OrderedDict()
    for entry in suite.entries:
        results[entry.name] = evaluate_test_set(model, entry, *suite.prepared[entry.name], suite.batch_size,
                                                suite.num_workers, show_progress=False)
    scores = OrderedDict((task, float(results[name][SCORE_METRIC])) for task, name in COMPETITION_TEST_SETS.items())
    return scores, flat_results(suite.entries, suite.prepared, results)


def run(args):
    from allinone.utils.env import configure_threads
    from allinone.config import load_config

    configure_threads(load_config(args.config, args.override).get_path("Global.num_threads"))
    import paddle  # noqa: F401  (after the thread set-up)
    from tqdm import tqdm

    from allinone.utils.env import configure_faiss_threads, resolve_device

    from .latency import LatencyMeter, backbone_cost
    from .subnet_codes import subnet_from_code

    configure_faiss_threads()
    logging.getLogger("allinone").setLevel(logging.WARNING)  # one progress bar over codes, not a log per test set
    cfg, model = build_supernet(args)
    resolve_device(cfg.Global.device)
    backbone = model.backbone
    codes = read_codes(args.archs) if args.archs else sample_codes(backbone.search_space, args.sample, args.seed)
    archs = OrderedDict((code, subnet_from_code(code, backbone)) for code in codes)  # every code checked first
    suite = competition_suite(cfg, args.batch_size)
    meter = None if args.no_latency else LatencyMeter(args.latency_threads, args.latency_warmup, args.latency_runs,
                                                      args.latency_batch, args.latency_device)
    settings = {"test_sets": dict(COMPETITION_TEST_SETS), "score": SCORE_METRIC,
                "image_size": list(backbone.img_size), "latency": meter.describe() if meter else None}
    store = MeasurementStore(os.path.join(args.output, MEASUREMENTS_FILE), supernet_identity(cfg, args.model_path),
                             settings)
    todo = [code for code in codes if "scores" not in store.records.get(code, {})]
    print(f"{len(codes)} sub-networks: {len(codes) - len(todo)} already measured in {store.path}, {len(todo)} to "
          f"evaluate", flush=True)
    for code in tqdm(todo, desc="accuracy", unit="subnet", disable=args.quiet):
        start = time.perf_counter()
        backbone.set_subnet(archs[code])
        scores, metrics = evaluate_code(model, suite)
        store.put(code, scores=scores, metrics=metrics, eval_seconds=round(time.perf_counter() - start, 4),
                  **backbone_cost(backbone, archs[code]))
        store.save()
    if meter is not None:
        pending = [code for code in codes if "latency_ms" not in store.records.get(code, {})]
        groups = [pending[i:i + args.latency_group] for i in range(0, len(pending), args.latency_group)]
        for group in tqdm(groups, desc="latency", unit="group", disable=args.quiet or not groups):
            for code, milliseconds in zip(group, meter.measure(cfg, model, [archs[code] for code in group])):
                store.put(code, latency_ms=round(milliseconds, 4))
            store.save()
    competition = write_competition_json(store.records, os.path.join(args.output, COMPETITION_FILE))
    print(f"wrote {store.path} ({len(store.records)} sub-networks)"
          + (f" and {competition} (ranks per task)" if competition else ""), flush=True)
    return store


def main(argv=None):
    from allinone.utils.cli import USER_ERROR, run_cli
    from oneforall.arch_code import ArchCodeError
    from oneforall.elastic import SubnetError

    args = parse_args(argv)
    try:
        return run_cli(run, args)
    except (ArchCodeError, SubnetError) as err:  # a bad code: one line
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
