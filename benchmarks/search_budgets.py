"""A study's summary at smaller budgets, from its trials' rows: one study at 5e6 s answers for 1e6 s too.

No optimizer sees its budget, so a trial's rows within a smaller budget are the rows of the same
trial run with that budget (``nbcompile.search.analysis.within_budget``; the tests check it for
every algorithm). Several studies with the same dataset, seed, budget and options (say one per
algorithm, run side by side) are read together; an algorithm in more than one must have the same
rows in each, which random search, the baseline, does. Trials that have not finished yet are left
out, so a running study can be read; the table gives each algorithm's count.

Prints a table per budget and writes JSON. Usage:

    python benchmarks/search_budgets.py STUDY_A STUDY_B --budgets 1e6 2e6 5e6 --out budgets.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import pyarrow

from nbcompile.fileio import read_json_document, write_atomic
from nbcompile.search import Budget
from nbcompile.search.analysis import SUMMARY_NOTES, format_summary, summarize_study, trial_regrets, within_budget
from nbcompile.search.experiment import Experiment, trials_of
from nbcompile.search.study import STUDY_FILE, STUDY_FORMAT, StudyFolder, evaluation_columns

#: Settings that may differ between studies read together.
PER_STUDY = ("algorithms", "trials")


def read_studies(folders: list[Path]) -> tuple[dict[str, Any], list[str], dict[str, pyarrow.Table], dict[str, Any]]:
    """The shared settings, the algorithms in order, each algorithm's finished rows (trial by
    trial), and per algorithm its failed trials (``failed``) and finished trials' compute seconds
    (``seconds``); SystemExit naming the study that does not fit."""
    shared: dict[str, Any] | None = None
    tables: dict[tuple[str, int], pyarrow.Table] = {}
    failed: dict[str, int] = {}
    seconds: dict[tuple[str, int], float] = {}
    algorithms: list[str] = []
    for folder in folders:
        settings = read_json_document(folder / STUDY_FILE, "a study's settings", STUDY_FORMAT)
        common = {key: value for key, value in settings.items() if key not in PER_STUDY}
        if shared is None:
            shared = common
        elif common != shared:
            differing = next(key for key in {**shared, **common} if shared.get(key) != common.get(key))
            raise SystemExit(f"{folder}: its {differing} differs from {folders[0]}'s; read it on its own")
        budget = Budget(**settings["budget"])
        experiment = Experiment("", tuple(settings["algorithms"]), settings["trials"], budget, settings["seed"])
        study = StudyFolder(folder)
        for trial in trials_of(experiment):
            if not study.is_finished(trial):
                continue
            table, metadata = study.read_trial(trial)
            if metadata["status"] != "ok":
                failed[trial.algorithm] = failed.get(trial.algorithm, 0) + 1
                continue
            key = (trial.algorithm, trial.number)
            if key in tables and not tables[key].equals(table):
                raise SystemExit(f"{folder}: trial {trial.name} has other rows than in an earlier study")
            tables[key] = table
            seconds.setdefault(key, metadata["seconds"])
            if trial.algorithm not in algorithms:
                algorithms.append(trial.algorithm)
    assert shared is not None
    by_algorithm = {
        name: pyarrow.concat_tables([tables[key] for key in sorted(tables) if key[0] == name]) for name in algorithms
    }
    compute = {name: [seconds[key] for key in sorted(seconds) if key[0] == name] for name in algorithms}
    return shared, algorithms, by_algorithm, {"failed": failed, "seconds": compute}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path, help="study folders (nbcompile search --out)")
    parser.add_argument("--budgets", nargs="+", type=float, required=True, help="budgets, in the studies' unit")
    parser.add_argument("--out", type=Path, help="write the summaries as JSON here")
    args = parser.parse_args()

    settings, algorithms, tables, trials = read_studies(args.studies)
    studied = Budget(**settings["budget"])
    if max(args.budgets) > studied.amount:
        raise SystemExit(
            f"--budgets: the studies ran {studied.amount:g} ({studied.kind}); a larger budget needs a new study"
        )
    columns = evaluation_columns(pyarrow.concat_tables([tables[name] for name in algorithms]))
    reference = settings["dataset"]["best_mean_test_accuracy"]
    summaries = []
    for amount in sorted(args.budgets):
        budget = Budget(amount, studied.kind)
        curves = trial_regrets(within_budget(columns, budget), reference)
        seconds = trials["seconds"] if amount == studied.amount else None  # a trial's compute, at its budget
        rows = summarize_study(curves, algorithms, trials["failed"], seconds)
        summaries.append({"budget": amount, "kind": studied.kind, "algorithms": rows})
        unit = "s" if studied.kind == "time" else "queries"
        print(f"\nwithin {amount:g} {unit} (the studies ran {studied.amount:g}):")
        print(format_summary(rows, notes=False))
    print("\n".join(SUMMARY_NOTES))
    if args.out:
        result = {
            "studies": [folder.name for folder in args.studies],
            "settings": settings,
            "regret_reference": reference,
            "summaries": summaries,
            "machine": f"{platform.machine()}, {platform.python_version()}",
        }
        write_atomic(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
