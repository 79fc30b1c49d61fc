"""``mechsel config --check``: every task's data read and drawn as the run would, before any model loads.

:func:`check_data` draws each local task's candidate / dev / test subsets with the run's own
settings (:meth:`~mechsel.experiment.config.TaskSettings.split_config`, ``source``, ``data_dir``),
so a missing file or split, a malformed row, a label outside the label set or a subset the split
cannot supply fails here with the error the run would give, naming the task's config fields.
Tasks read from the hub (``source: hub``) need the network and are left for the run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mechsel.errors import ConfigError, DataError, MechselError
from mechsel.experiment.config import ExperimentConfig, TaskSettings

__all__ = ["TaskDataReport", "check_data", "task_data_error"]


@dataclass(frozen=True)
class TaskDataReport:
    """What :func:`check_data` found for one task."""

    task: str
    """The task's name."""
    kind: str
    """``classification`` or ``generation``; ``hub`` for a task not read (hub source)."""
    sizes: dict[str, int] = field(default_factory=dict)
    """Subset (``candidates``, ``dev``, ``test``) → examples drawn."""
    sources: dict[str, str] = field(default_factory=dict)
    """Subset → the split it is drawn from."""
    test_labels: dict[str, int] = field(default_factory=dict)
    """Label name → test queries with it (classification)."""
    notes: tuple[str, ...] = ()
    """What is worth a look but does not stop a run (e.g. a label no candidate carries)."""

    def line(self) -> str:
        """One line for the terminal."""
        if self.kind == "hub":
            return f"{self.task}: source hub, not read here (needs the network; the run reads it)."
        subsets = ", ".join(f"{name} {n} ({self.sources[name]})" for name, n in self.sizes.items())
        text = f"{self.task}: {self.kind}; {subsets}"
        if self.test_labels:
            total = sum(self.test_labels.values())
            top = max(self.test_labels.values())
            text += f"; test labels {', '.join(f'{k} {v}' for k, v in self.test_labels.items())} (majority share {top / total:.3f})"
        return text + "." + "".join(f" Note: {n}" for n in self.notes)


def task_data_error(task: TaskSettings, err: MechselError, origin: str = "") -> DataError:
    """``err`` (raised reading or drawing ``task``'s data) as one error naming the task's config
    entry; for a task defined in the config, its ``TaskConfig`` fields are named as they are
    written there (``tasks[name].define.test_split``)."""
    text = str(err)
    if task.define is not None:
        text = text.replace("TaskConfig.", f"tasks[{task.name}].define.")
    where = f"{origin}: " if origin else ""
    return DataError(f"{where}tasks[{task.name}]: {text}")


def check_data(config: ExperimentConfig, origin: str = "") -> list[TaskDataReport]:
    """Read and draw every local task's subsets as the run would; one :class:`TaskDataReport` per task.

    Raises:
        DataError: the first problem, naming ``origin`` (the config file) and the task's entry.
    """
    from mechsel.tasks import make_splits

    reports = []
    for t in config.tasks:
        if t.source == "hub":
            reports.append(TaskDataReport(t.name, "hub"))
            continue
        try:
            cfg = t.task_config()
            splits = make_splits(cfg, t.split_config(config.split_seed), source=t.source, data_dir=t.data_dir)
        except (ConfigError, DataError) as err:
            raise task_data_error(t, err, origin) from None
        sizes = {"candidates": len(splits.pool), "dev": len(splits.dev), "test": len(splits.test)}
        sources = {"candidates": splits.sources["pool"], "dev": splits.sources["dev"], "test": splits.sources["test"]}
        notes: list[str] = []
        test_labels: dict[str, int] = {}
        if cfg.kind == "classification":
            counts = Counter(e.label for e in splits.test)
            test_labels = {name: counts.get(i, 0) for i, name in enumerate(cfg.label_names)}
            in_pool = {e.label for e in splits.pool}
            missing = [name for i, name in enumerate(cfg.label_names) if i not in in_pool]
            if missing:
                notes.append(f"no candidate is labelled {missing}, so no demonstration can show those labels.")
            absent = [name for name, n in test_labels.items() if n == 0]
            if absent:
                notes.append(f"no test query is labelled {absent}.")
        reports.append(TaskDataReport(t.name, cfg.kind, sizes, sources, test_labels, tuple(notes)))
    return reports
