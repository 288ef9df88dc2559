"""One array per request row, whatever the graph takes: a conditional model's label rides in the
last column, so the micro-batcher keeps batching plain arrays (rows = samples, the shape is the
key) and the graph gets its named inputs back when the batch runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.arrays import FloatArray
from app.runtime.choice import EngineChoice
from app.runtime.graph import Graph

Outputs = dict[str, FloatArray]


@dataclass(frozen=True)
class PackedGraph:
    """A graph (on whichever engine was chosen for it) with its first input of per-row shape
    `row_shape`, and a label `y` when `conditional`; `choice` says which engine and precision
    run it and why (None for a graph opened without a choice)."""

    graph: Graph
    row_shape: tuple[int, ...]
    conditional: bool
    choice: EngineChoice | None = None

    def pack(self, first: np.ndarray, labels: np.ndarray | None = None) -> FloatArray:
        """Rows for the batcher: the first input as float32, with the label appended when the
        graph takes one."""
        rows = np.ascontiguousarray(first, dtype=np.float32)
        if not self.conditional:
            return rows
        if labels is None:
            raise ValueError("this graph needs a label for every row")
        flat = rows.reshape(len(rows), -1)
        return np.concatenate([flat, np.asarray(labels, np.float32).reshape(-1, 1)], axis=1)

    def run(self, packed: FloatArray) -> Outputs:
        """Runs one batch of packed rows."""
        if not self.conditional:
            return self.graph.run(packed)
        first = packed[:, :-1].reshape(len(packed), *self.row_shape)
        labels = np.rint(packed[:, -1]).astype(np.int64)
        return self.graph.run_feeds({self.graph.input_name: first, "y": labels})

    def warm(self, rows: int) -> None:
        """One run at a batch size, so the session's buffers exist before traffic comes."""
        first = np.zeros((rows, *self.row_shape), np.float32)
        self.run(self.pack(first, np.zeros(rows) if self.conditional else None))
