"""What a run does between loading its data and writing its record, by kind: ``distill`` (the
method distils or selects a set, fresh networks are evaluated on it) and ``continual``
(class-incremental learning, Fig 4d). Every task goes through the same runner, store, grid and
launcher; a task contributes only its own settings and the task-specific part of the record."""

from __future__ import annotations

from typing import Any, ClassVar

from bench.core.params import NoSettings
from bench.core.registry import Registry

TASKS: Registry[type["Task"]] = Registry("task")


class Task:
    Settings: ClassVar[type] = NoSettings

    @classmethod
    def defaults(cls, scale) -> dict:
        """Defaults of ``Settings`` that follow the scale preset."""
        return {}

    def run(self, resolved, ctx, dataset, device) -> tuple[Any, dict]:
        """(the synthetic set to store or None, record fields: at least ``accuracy``)."""
        raise NotImplementedError
