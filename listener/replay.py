"""Reading replay files: JSON Lines of mentions, where a bad line is reported and skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from listener.errors import MentionError, Problem
from listener.mention import Mention

ProblemSink = Callable[[Problem], None]


@dataclass
class ReplayReader:
    """Iterates over the good mentions of one file; `skipped` counts the lines it could not use."""

    path: Path
    on_problem: ProblemSink | None = None
    skipped: int = 0
    read: int = 0
    problems: list[Problem] = field(default_factory=list)
    keep_problems: int = 1000  # enough to show a user, bounded for huge files

    def __iter__(self) -> Iterator[Mention]:
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    mention = Mention.from_json(line)
                except MentionError as exc:
                    self._report(Problem(str(self.path), number, None, f"{exc} (line skipped)"))
                    continue
                self.read += 1
                yield mention

    def batches(self, size: int = 1000) -> Iterator[list[Mention]]:
        batch: list[Mention] = []
        for mention in self:
            batch.append(mention)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _report(self, problem: Problem) -> None:
        self.skipped += 1
        if len(self.problems) < self.keep_problems:
            self.problems.append(problem)
        if self.on_problem is not None:
            self.on_problem(problem)
