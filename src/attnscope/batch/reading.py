"""Reading a corpus head atlas (the folder ``attnscope batch`` writes) for the web app and the library.

:class:`Atlas` is one version of one atlas folder: its index (``atlas.json``, checked: format, schema
version, shard names and files, checksums), the per-head distribution of each head metric (from
``summary.parquet`` when the atlas is complete, computed from the shards when it is still partial),
the prompts where a head behaves unusually (largest robust z, :func:`robust_z`) and one prompt's details.
(:class:`attnscope.batch.shelf.AtlasShelf` keeps them by name and re-reads one whose index changed.)

Only the columns an answer needs are read, shard by shard in record batches, so memory stays bounded
by one shard and the per-head arrays (layers x heads), whatever the corpus size. Every shard's
SHA-256 is checked against the index before its first read.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from attnscope.analysis.heads import metric_titles
from attnscope.batch import layout
from attnscope.batch.atlas_index import (
    AtlasChanged,
    AtlasFormatError,
    AtlasQueryError,
    atlas_name,
    check_index,
    sha256,
    stamp,
)
from attnscope.errors import NotFoundError

MAD_SCALE = 1.4826  # MAD x 1.4826 estimates the standard deviation of normally distributed values
MEAN_AD_SCALE = 1.253314  # the stand-in when MAD is 0: mean absolute deviation x 1.2533 (Iglewicz & Hoaglin)
TEXT_PREVIEW = 300  # characters of a prompt's text in a list of unusual prompts (the prompt answer has it whole)
BATCH_ROWS = 65_536  # rows per record batch read from a shard


def robust_z(values: np.ndarray) -> tuple[np.ndarray, dict[str, float | str]]:
    """Robust z of each value: (x - median) / (1.4826 * MAD), MAD = median |x - median|; when MAD is 0
    (over half the values equal), 1.2533 * mean |x - median| stands in; when that is 0 too, every z is 0.

    values: (n,) finite floats. Returns z (n,) float64 and {median, mad, scale, rule}.
    """
    values = np.asarray(values, dtype=np.float64)
    median = float(np.median(values))
    deviation = np.abs(values - median)
    mad = float(np.median(deviation))
    if mad > 0:
        scale, rule = MAD_SCALE * mad, "mad"
    else:
        mean_ad = float(deviation.mean())
        scale, rule = (MEAN_AD_SCALE * mean_ad, "mean_ad") if mean_ad > 0 else (0.0, "constant")
    z = (values - median) / scale if scale > 0 else np.zeros_like(values)
    return z, {"median": median, "mad": mad, "scale": scale, "rule": rule}


class Atlas:
    """One version of an atlas folder: the index as read once, and the shards it lists (nothing else)."""

    def __init__(self, folder: Path, index: dict[str, Any], raw: bytes, stamp: tuple[int, int]) -> None:
        self.folder = folder
        self.index = index
        self.version = hashlib.sha256(raw).hexdigest()  # of atlas.json's bytes
        self.stamp = stamp
        self.name = atlas_name(folder)
        model = index["model"]
        self.layers, self.heads = int(model["num_layers"]), int(model["num_heads"])
        self.metrics: list[str] = list(index["metrics"])
        self.methods: list[str] = list(index.get("methods") or [])
        self.shards: list[dict[str, Any]] = list(index["shards"])
        self.complete = bool(index["complete"])
        self._verified: set[str] = set()
        self._lock = threading.Lock()
        self._summary: dict[tuple[int, int, str], dict[str, Any]] | None = None
        self._totals: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None

    # ---- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | Path) -> Atlas:
        """The atlas in ``folder`` as its index describes it now; one-line :class:`AtlasFormatError` otherwise."""
        folder = Path(folder)
        path = folder / layout.INDEX
        if not folder.is_dir():
            raise AtlasFormatError(f"{folder}: no such folder")
        try:
            when = stamp(path)
            raw = path.read_bytes()
        except FileNotFoundError:
            raise AtlasFormatError(f"{folder} is not an atlas folder: it has no {layout.INDEX}") from None
        except OSError as error:
            raise AtlasFormatError(f"{path}: cannot read it ({error.strerror or error})") from None
        try:
            index = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise AtlasFormatError(f"{path} is not valid JSON ({str(error).splitlines()[0]})") from None
        check_index(index, path)
        return cls(folder, index, raw, when)

    def changed(self) -> bool:
        """Whether atlas.json on disk is no longer the one this object was opened from."""
        try:
            path = self.folder / layout.INDEX
            # the same stamp (the usual case): nothing read, nothing hashed
            return stamp(path) != self.stamp and hashlib.sha256(path.read_bytes()).hexdigest() != self.version
        except OSError:
            return True

    # ---- shards ----------------------------------------------------------------------------------
    def _file(self, shard: dict[str, Any], kind: str) -> Path:
        """A shard's ``kind`` file ("prompts" or "heads"), its checksum checked once per atlas version."""
        path = self.folder / shard["files"][kind]
        key = f"{shard['id']}/{kind}"
        if key in self._verified:
            return path
        try:
            digest = sha256(path)
        except FileNotFoundError:
            raise AtlasFormatError(f"atlas {self.name}: {shard['files'][kind]} is missing") from None
        if digest != shard["sha256"][kind]:
            if self.changed():
                raise AtlasChanged()
            raise AtlasFormatError(
                f"atlas {self.name}: {shard['files'][kind]} does not match its checksum in atlas.json"
            )
        self._verified.add(key)
        return path

    def _batches(self, shard: dict[str, Any], kind: str, columns: list[str]) -> Iterator[Any]:
        """Record batches of ``columns`` of one shard file (pyarrow), its row count checked against the index."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self._file(shard, kind)
        try:
            parquet = pq.ParquetFile(path)
            names = set(parquet.schema_arrow.names)
            missing = [c for c in columns if c not in names]
            if missing:
                raise AtlasFormatError(f"atlas {self.name}: {shard['files'][kind]} has no column {missing[0]!r}")
            if parquet.metadata.num_rows != shard["rows"][kind]:
                raise AtlasFormatError(
                    f"atlas {self.name}: {shard['files'][kind]} has {parquet.metadata.num_rows} rows; "
                    f"atlas.json says {shard['rows'][kind]}"
                )
            yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)
        except (pa.ArrowException, OSError) as error:
            raise AtlasFormatError(f"atlas {self.name}: {shard['files'][kind]} cannot be read ({error})") from None

    def _head_rows(
        self, columns: list[str]
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
        """Per record batch of every heads shard: prompt_index (n,), layer (n,), head (n,), {metric: (n,) float64}."""
        for shard in self.shards:
            for batch in self._batches(shard, "heads", ["prompt_index", "layer", "head", *columns]):
                prompt = batch.column("prompt_index").to_numpy(zero_copy_only=False)
                layer = batch.column("layer").to_numpy(zero_copy_only=False).astype(np.int64)
                head = batch.column("head").to_numpy(zero_copy_only=False).astype(np.int64)
                if len(layer) and (
                    layer.min() < 0 or layer.max() >= self.layers or head.min() < 0 or head.max() >= self.heads
                ):
                    raise AtlasFormatError(
                        f"atlas {self.name}: {shard['files']['heads']} names a layer or head the model lacks"
                    )
                values = {c: batch.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in columns}
                yield prompt, layer, head, values

    # ---- answers ---------------------------------------------------------------------------------
    def prompt_range(self) -> list[tuple[int, int]]:
        return [(int(s["first"]), int(s["last"])) for s in self.shards]

    def describe(self) -> dict[str, Any]:
        """The index facts a page shows (the corpus file named by its file name only)."""
        index = self.index
        corpus = dict(index.get("corpus") or {})
        if isinstance(corpus.get("path"), str):
            corpus["path"] = Path(corpus["path"]).name
        stored = sum(int(s["rows"]["prompts"]) for s in self.shards)
        threshold = (index.get("options") or {}).get("threshold", 0.01)
        titles = metric_titles(threshold if isinstance(threshold, int | float) else 0.01)
        return {
            "name": self.name, "version": self.version, "model": index["model"], "metrics": self.metrics,
            "methods": self.methods, "top_k": index.get("top_k"), "engine": index.get("engine"), "corpus": corpus,
            "complete": self.complete, "prompts": stored, "shards": len(self.shards), "created": index.get("created"),
            "updated": index.get("updated"), "provenance": index.get("provenance"),
            "titles": {m: titles.get(m, m) for m in self.metrics}, "options": index.get("options"),
        }  # fmt: skip

    def check_metric(self, metric: str) -> str:
        if metric not in self.metrics:
            raise AtlasQueryError(f"metric {metric!r} is not in atlas {self.name}; it has {', '.join(self.metrics)}")
        return metric

    def check_head(self, layer: int, head: int) -> None:
        if not (0 <= layer < self.layers and 0 <= head < self.heads):
            raise NotFoundError(
                f"layer {layer}, head {head} is not in atlas {self.name} ({self.layers} layers x {self.heads} heads)"
            )

    def grid(self) -> dict[str, dict[str, Any]]:
        """Per metric: the corpus mean, count, minimum and maximum of every head, as (layers, heads) lists.

        From summary.parquet when the atlas is complete, else accumulated over the shards read so far."""
        out: dict[str, dict[str, Any]] = {}
        if self.complete:
            rows = self._summary_rows()
            for metric in self.metrics:
                stats = {s: np.full((self.layers, self.heads), np.nan) for s in ("mean", "count", "min", "max")}
                for (layer, head, name), row in rows.items():
                    if name == metric:
                        for s in stats:
                            stats[s][layer, head] = row[s]
                out[metric] = {s: _lists(a) for s, a in stats.items()}
            return out
        for metric, (total, count, low, high) in self._accumulate().items():
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            out[metric] = {"mean": _lists(mean), "count": _lists(count), "min": _lists(low), "max": _lists(high)}
        return out

    def _accumulate(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per metric: sum, count, min, max of the finite values, each (layers, heads), over every shard
        (one pass, kept for this version of the atlas)."""
        with self._lock:  # concurrent first requests make one sweep, not one each
            if self._totals is None:
                self._totals = self._sweep()
            return self._totals

    def _sweep(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        cells = self.layers * self.heads
        totals = {
            m: (np.zeros(cells), np.zeros(cells), np.full(cells, np.inf), np.full(cells, -np.inf)) for m in self.metrics
        }
        for _, layer, head, values in self._head_rows(self.metrics):
            cell = layer * self.heads + head
            for metric, column in values.items():
                total, count, low, high = totals[metric]
                finite = np.isfinite(column)
                total += np.bincount(cell[finite], weights=column[finite], minlength=cells)
                count += np.bincount(cell[finite], minlength=cells)
                np.minimum.at(low, cell[finite], column[finite])
                np.maximum.at(high, cell[finite], column[finite])
        shape = (self.layers, self.heads)

        def shaped(total: np.ndarray, count: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, ...]:
            empty = count == 0
            return tuple(
                a.reshape(shape) for a in (total, count, np.where(empty, np.nan, low), np.where(empty, np.nan, high))
            )

        return {metric: shaped(*sums) for metric, sums in totals.items()}  # type: ignore[misc]

    def _summary_rows(self) -> dict[tuple[int, int, str], dict[str, Any]]:
        """summary.parquet as {(layer, head, metric): row}, read once per atlas version."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._lock:
            if self._summary is not None:
                return self._summary
            path = self.folder / layout.SUMMARY
            expected = (self.index.get("summary") or {}).get("sha256")
            try:
                if expected is not None and sha256(path) != expected:
                    if self.changed():
                        raise AtlasChanged()
                    raise AtlasFormatError(
                        f"atlas {self.name}: {layout.SUMMARY} does not match its checksum in atlas.json"
                    )
                table = pq.read_table(path).to_pylist()
            except FileNotFoundError:
                raise AtlasFormatError(f"atlas {self.name} is marked complete but has no {layout.SUMMARY}") from None
            except (pa.ArrowException, OSError) as error:
                raise AtlasFormatError(f"atlas {self.name}: {layout.SUMMARY} cannot be read ({error})") from None
            try:
                self._summary = {(int(r["layer"]), int(r["head"]), str(r["metric"])): r for r in table}
            except (KeyError, TypeError, ValueError):
                raise AtlasFormatError(f"atlas {self.name}: {layout.SUMMARY} lacks its key columns") from None
            return self._summary

    def head_values(self, layer: int, head: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """One head's ``metric`` over the corpus: prompt_index (n,) int64 and value (n,) float64, finite only,
        in corpus order."""
        prompts: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for prompt, layers, heads, columns in self._head_rows([metric]):
            chosen = (layers == layer) & (heads == head) & np.isfinite(columns[metric])
            prompts.append(prompt[chosen])
            values.append(columns[metric][chosen])
        if not prompts:
            return np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(prompts).astype(np.int64), np.concatenate(values)

    def distribution(self, layer: int, head: int, metric: str, values: np.ndarray) -> dict[str, Any]:
        """Count, mean, std, min, quantiles, max and histogram (edges, counts) of one head's metric: the
        stored summary when the atlas is complete, else computed from ``values`` (numpy, linear quantiles)."""
        if self.complete:
            row = self._summary_rows().get((layer, head, metric))
            if row is None:
                raise AtlasFormatError(
                    f"atlas {self.name}: {layout.SUMMARY} has no row for layer {layer}, head {head}, {metric}"
                )
            edges = (self.index.get("bins") or {}).get(metric)
            stored = {s: _number(row[s]) for s in layout.SUMMARY_STATS} | {"count": int(row["count"])}
            return {"source": "summary", **stored, "histogram": {"edges": edges, "counts": list(row["histogram"])}}
        stats: dict[str, Any] = {s: None for s in layout.SUMMARY_STATS} | {"count": len(values)}
        counts: list[int] = []
        edges_list: list[float] | None = None
        if len(values):
            quantiles = np.quantile(values, list(layout.SUMMARY_QUANTILES.values()))
            stats.update(
                mean=float(values.mean()), std=float(values.std()), min=float(values.min()), max=float(values.max())
            )
            stats.update({name: float(q) for name, q in zip(layout.SUMMARY_QUANTILES, quantiles, strict=True)})
            _, _, lows, highs = self._accumulate()[metric]  # the metric's range over every head, as summary.py
            low, high = float(np.nanmin(lows)), float(np.nanmax(highs))
            if high <= low:
                low, high = low - 0.5, high + 0.5
            edges = np.linspace(low, high, layout.HISTOGRAM_BINS + 1)
            counts = [int(c) for c in np.histogram(values, bins=edges)[0]]
            edges_list = [float(e) for e in edges]
        return {"source": "shards", **stats, "histogram": {"edges": edges_list, "counts": counts}}

    def head(self, layer: int, head: int, metric: str, top: int = 10) -> dict[str, Any]:
        """One head's ``metric`` over the corpus: its distribution and the ``top`` prompts with the largest
        |robust z| (ties: corpus order), each with its value, z and the prompt's facts."""
        self.check_head(layer, head)
        self.check_metric(metric)
        prompts, values = self.head_values(layer, head, metric)
        answer: dict[str, Any] = {"layer": layer, "head": head, "metric": metric}
        answer["distribution"] = self.distribution(layer, head, metric, values)
        if not len(values):
            answer.update(robust=None, unusual=[])
            return answer
        z, robust = robust_z(values)
        order = np.lexsort((prompts, -np.abs(z)))[:top]
        facts = self.prompt_facts(prompts[order].tolist())
        answer["robust"] = robust
        answer["unusual"] = [
            {**facts[int(prompts[i])], "value": float(values[i]), "z": float(z[i])} for i in order
        ]  # fmt: skip
        return answer

    def prompt_facts(self, indices: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Short facts (id, text preview, predicted token, token count, run_id) of the prompts ``indices``."""
        wanted = set(indices)
        facts: dict[int, dict[str, Any]] = {}
        columns = ["prompt_index", "prompt_id", "text", "n_tokens", "predicted", "run_id"]
        for shard in self.shards:
            if not any(int(shard["first"]) <= i <= int(shard["last"]) for i in wanted):
                continue
            for batch in self._batches(shard, "prompts", columns):
                for row in batch.to_pylist():
                    if row["prompt_index"] in wanted:
                        text = row["text"]
                        facts[row["prompt_index"]] = {
                            **row, "text": text[:TEXT_PREVIEW], "truncated": len(text) > TEXT_PREVIEW,
                        }  # fmt: skip
        missing = sorted(wanted - set(facts))
        if missing:
            raise AtlasFormatError(f"atlas {self.name}: prompt {missing[0]} has head rows but no prompts row")
        return facts

    def prompt(self, index: int) -> dict[str, Any]:
        """Everything stored for prompt ``index``: id, text, tokens, predictions, run_id, method scores."""
        shard = next((s for s in self.shards if int(s["first"]) <= index <= int(s["last"])), None)
        if shard is None:
            held = ", ".join(f"{a}–{b}" for a, b in self.prompt_range()) or "none yet"
            raise NotFoundError(f"prompt {index} is not in atlas {self.name} (it holds prompts {held})")
        columns = ["prompt_index", *(c for c in layout.PROMPT_COLUMNS if c != "prompt_index")]
        columns += [layout.score_column(m) for m in self.methods]
        for batch in self._batches(shard, "prompts", columns):
            for row in batch.to_pylist():
                if row["prompt_index"] == index:
                    scores = {m: row.pop(layout.score_column(m)) for m in self.methods}
                    top = [
                        {"token": tok, "prob": prob}
                        for tok, prob in zip(row.pop("top_tokens") or [], row.pop("top_probs") or [], strict=False)
                    ]
                    return {**row, "top": top, "scores": scores}
        raise NotFoundError(f"prompt {index} is not in atlas {self.name} (its shard lacks it)")


def _number(value: Any) -> Any:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _lists(array: np.ndarray) -> list[list[float | None]]:
    """A (layers, heads) array as nested lists, NaN and infinities as None (JSON has no NaN)."""
    return [[float(v) if np.isfinite(v) else None for v in row] for row in np.asarray(array, dtype=np.float64)]
