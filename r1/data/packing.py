"""Training rows from documents: tokenize, then pack (or length-bucket) into batches with a resumable position.

Packing (`batching="pack"`) fills rows of exactly `seq_len` tokens with `segment_ids` and per-document `positions`,
so a packed document is computed as it would be alone; each segment's first token is IGNORE_INDEX (the previous
document cannot predict it). Pretraining splits long documents across rows; SFT keeps each whole
(`split_documents=False`). Bucketing (`batching="bucket"`) batches documents of similar length, right-padded, so
causal attention needs no mask (it doubled steps/s on short, variable documents).

Order is a pure function of (seed, epoch), and the position (epoch, index) counts global batches, so a resumed run
(even with another number of processes) sees exactly the batches the interrupted one would have. Known limit: the
tokenized corpus lives in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from r1.errors import UserError
from r1.model.transformer import IGNORE_INDEX
from r1.readers import iter_jsonl, iter_lines

BATCHING = ("pack", "bucket")
LOSS_ON = ("all", "response")


@dataclass
class Example:
    """One tokenized document: ids and per-token labels (IGNORE_INDEX where the loss must not look)."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


# =============================================================================================== reading
def read_records(paths: Iterable[str | Path], text_field: str = "text") -> Iterator[dict[str, Any]]:
    """Records from `.jsonl` files and plain text files (one document per line, as `{text_field: line}`), each with
    `_source` ("file:line") for errors; a file without any record is an error."""
    for path in map(Path, paths):
        if not path.is_file():
            raise UserError(f"data file not found: {path}")
        found = 0
        if path.suffix == ".jsonl":
            for where, _, record in iter_jsonl(path):
                record.setdefault("_source", where)
                found += 1
                yield record
        else:
            for lineno, line in iter_lines(path):
                if line.strip():
                    found += 1
                    yield {text_field: line, "_source": f"{path}:{lineno}"}
        if not found:  # an empty file in a data list is a mistake (a failed export, a wrong path), not a corpus
            raise UserError(f"{path}: no records (the file is empty or blank)")


# =============================================================================================== tokenizing
def tokenize_records(
    records: Iterable[Mapping[str, Any]],
    tokenizer: Any | None,
    *,
    text_field: str = "text",
    loss_on: str = "all",
    add_bos: bool = True,
    vocab_size: int | None = None,
) -> list[Example]:
    """Pretraining examples: `[BOS] + text + [EOS]`, or `[BOS] + prompt` then `response + [EOS]`.

    Records: `{text_field}`; `{"prompt", "response"}` (`loss_on="response"`: the prompt gets IGNORE_INDEX, so the
    model learns to answer, not to write questions), encoded separately as at inference; or pre-tokenized
    `{"input_ids", "labels"?}` (given `vocab_size`, an id outside the vocabulary is an error naming the record).
    """
    if loss_on not in LOSS_ON:
        raise UserError(f"loss_on={loss_on!r}: must be one of {', '.join(LOSS_ON)}")
    records = list(records)
    texts: list[str] = []  # everything to encode, batched through the Rust encoder in one call
    plan: list[tuple[str, Mapping[str, Any]]] = []
    for i, r in enumerate(records):
        where = r.get("_source", f"record {i}")
        if "input_ids" in r:
            plan.append(("ids", r))
            continue
        if isinstance(r.get(text_field), str):
            plan.append(("text", r))
            texts.append(r[text_field])
        elif isinstance(r.get("prompt"), str) and isinstance(r.get("response"), str):
            plan.append(("pair", r))
            texts += [r["prompt"], r["response"]]
        else:
            raise UserError(
                f"{where}: expected a string {text_field!r} field, string 'prompt' and 'response' fields, "
                f"or 'input_ids'; got keys {sorted(k for k in r if k != '_source')}"
            )
    if texts and tokenizer is None:
        raise UserError("text data needs a tokenizer: set data.tokenizer (a directory, or 'train')")
    encoded = iter(tokenizer.encode_batch(texts)) if texts else iter(())
    bos = [tokenizer.bos_id] if add_bos and tokenizer is not None and tokenizer.bos_id is not None else []
    eos = [tokenizer.eos_id] if tokenizer is not None and tokenizer.eos_id is not None else []
    out: list[Example] = []
    for kind, r in plan:
        if kind == "ids":
            out.append(_pretokenized(r, vocab_size))
        elif kind == "text":
            ids = bos + next(encoded) + eos
            out.append(Example(ids, list(ids)))
        else:
            prompt, response = bos + next(encoded), next(encoded) + eos
            masked = [IGNORE_INDEX] * len(prompt) if loss_on == "response" else list(prompt)
            out.append(Example(prompt + response, masked + response))
    return out


def _pretokenized(r: Mapping[str, Any], vocab_size: int | None) -> Example:
    ids, labels = r["input_ids"], r.get("labels", r["input_ids"])
    where = r.get("_source", "record")
    if not (isinstance(ids, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in ids)):
        raise UserError(f"{where}: 'input_ids' must be a list of integers")
    if not (
        isinstance(labels, list)
        and len(labels) == len(ids)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in labels)
    ):
        raise UserError(f"{where}: 'labels' must be a list of integers as long as 'input_ids' ({len(ids)})")
    if vocab_size is not None:
        # an id outside the embedding table fails deep inside the forward (or reads garbage on some devices)
        for name, values, allowed in (("input_ids", ids, ()), ("labels", labels, (IGNORE_INDEX,))):
            bad = next((i for i, t in enumerate(values) if not 0 <= t < vocab_size and t not in allowed), None)
            if bad is not None:
                extra = f" or {IGNORE_INDEX} (no loss)" if allowed else ""
                raise UserError(
                    f"{where}: '{name}'[{bad}] = {values[bad]} is outside the model's vocabulary "
                    f"(0..{vocab_size - 1}{extra})"
                )
    return Example(list(ids), list(labels))


# =============================================================================================== packing
@dataclass
class Rows:
    """Packed rows, all [N, seq_len]: what the model reads. Padding has segment id -1 and IGNORE_INDEX labels."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor
    segment_ids: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batch(self, index: Sequence[int]) -> dict[str, torch.Tensor]:
        i = torch.as_tensor(list(index), dtype=torch.long)
        return {
            "input_ids": self.input_ids[i],
            "labels": self.labels[i],
            "positions": self.positions[i],
            "segment_ids": self.segment_ids[i],
        }


def pack(examples: Sequence[Example], seq_len: int, pad_id: int = 0, split_documents: bool = True) -> Rows:
    """Rows of exactly `seq_len` tokens, documents separated by segment ids, positions restarting per document.

    split_documents=True (pretraining): one continuous stream cut every seq_len tokens; a document cut in two
    continues as a new segment of the next row. False (SFT): next-fit, an example starts a new row when it does
    not fit in the current one; examples longer than seq_len are truncated.
    """
    if seq_len < 2:
        raise UserError(f"seq_len={seq_len}: must be >= 2")
    if split_documents:
        ids = [t for e in examples for t in e.input_ids]
        labels = [t for e in examples for t in e.labels]
        doc = [d for d, e in enumerate(examples) for _ in range(len(e))]
    else:
        ids, labels, doc = [], [], []
        for d, e in enumerate(examples):
            n = min(len(e), seq_len)
            room = seq_len - len(ids) % seq_len
            if n > room:  # does not fit: pad out the current row
                ids += [pad_id] * room
                labels += [IGNORE_INDEX] * room
                doc += [-1] * room
            ids += e.input_ids[:n]
            labels += e.labels[:n]
            doc += [d] * n
    pad = -len(ids) % seq_len
    ids += [pad_id] * pad
    labels += [IGNORE_INDEX] * pad
    doc += [-1] * pad
    ids_t = torch.tensor(ids, dtype=torch.long).view(-1, seq_len)
    labels_t = torch.tensor(labels, dtype=torch.long).view(-1, seq_len)
    seg = torch.tensor(doc, dtype=torch.long).view(-1, seq_len)
    # a segment starts at column 0 and wherever the document id changes
    starts = torch.ones_like(seg, dtype=torch.bool)
    starts[:, 1:] = seg[:, 1:] != seg[:, :-1]
    col = torch.arange(seq_len).expand_as(seg)
    positions = col - torch.where(starts, col, 0).cummax(dim=1).values
    labels_t[starts] = IGNORE_INDEX  # no prediction of a segment's first token from across the boundary
    return Rows(ids_t, labels_t, positions, seg)


def collate_padded(examples: Sequence[Example], pad_id: int = 0, max_len: int | None = None) -> dict[str, torch.Tensor]:
    """Right-padded batch for length bucketing: no segment ids needed, causal attention never sees the padding."""
    T = max(len(e) for e in examples)
    T = min(T, max_len) if max_len else T
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE_INDEX, dtype=torch.long)
    for i, e in enumerate(examples):
        n = min(len(e), T)
        ids[i, :n] = torch.tensor(e.input_ids[:n])
        labels[i, :n] = torch.tensor(e.labels[:n])
    positions = torch.arange(T).expand(len(examples), T).clone()
    n_tokens = torch.tensor(sum(min(len(e), T) for e in examples))  # real (unpadded) tokens, for throughput
    return {"input_ids": ids, "labels": labels, "positions": positions, "n_tokens": n_tokens}


# =============================================================================================== batches
class BatchStream:
    """Global batches in a deterministic order, endlessly over epochs, with a saveable position.

    Each call to `next_batches` consumes one global batch of `batch_size` rows (packed) or examples (bucketed)
    and returns this rank's contiguous share of it, cut into micro-batches.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        *,
        seq_len: int,
        batch_size: int,
        pad_id: int = 0,
        batching: str = "pack",
        split_documents: bool = True,
        seed: int = 0,
        shuffle: bool = True,
        bucket_window: int = 16,
    ) -> None:
        if batching not in BATCHING:
            raise UserError(f"batching={batching!r}: must be one of {', '.join(BATCHING)}")
        if not examples:
            raise UserError("no training examples: the data is empty (set data.paths or data.builtin)")
        self.batching, self.seq_len, self.batch_size = batching, seq_len, batch_size
        self.pad_id, self.seed, self.shuffle, self.window = pad_id, seed, shuffle, bucket_window
        if batching == "pack":
            self.rows: Rows | None = pack(examples, seq_len, pad_id, split_documents)
            self.examples: list[Example] = []
            self.n_items = len(self.rows)
        else:
            self.rows = None
            self.examples = [
                e if len(e) <= seq_len else Example(e.input_ids[:seq_len], e.labels[:seq_len]) for e in examples
            ]
            self.n_items = len(self.examples)
        self.epoch, self.index = 0, 0
        self._cache: tuple[int, list[list[int]]] | None = None

    # ----------------------------------------------------------------------------------- order
    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The global batches of one epoch (item indices); every item appears, the last batch wraps around."""
        if self._cache and self._cache[0] == epoch:
            return self._cache[1]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n, B = self.n_items, self.batch_size
        order = torch.randperm(n, generator=g).tolist() if self.shuffle else list(range(n))
        order += order[: -len(order) % B] if len(order) % B else []  # wrap so every batch is full
        while len(order) < B:  # fewer items than one batch: repeat them
            order += order[: B - len(order)]
        if self.batching == "bucket":
            lengths = [len(e) for e in self.examples]
            span = B * self.window  # sort by length within windows of many batches, then shuffle the batches
            order = [
                i for s in range(0, len(order), span) for i in sorted(order[s : s + span], key=lambda i: -lengths[i])
            ]
        batches = [order[s : s + B] for s in range(0, len(order) - B + 1, B)]
        if self.batching == "bucket" and self.shuffle:
            perm = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[p] for p in perm]
        self._cache = (epoch, batches)
        return batches

    @property
    def steps_per_epoch(self) -> int:
        return len(self.epoch_batches(self.epoch))

    def next_batches(self, rank: int = 0, world: int = 1, micro_batch_size: int | None = None) -> list[dict]:
        """This rank's micro-batches of the next global batch; advances the position."""
        batches = self.epoch_batches(self.epoch)
        batch = batches[self.index]
        self.index += 1
        if self.index == len(batches):
            self.epoch, self.index = self.epoch + 1, 0
        per_rank = len(batch) // world
        mine = batch[rank * per_rank : (rank + 1) * per_rank]
        mb = micro_batch_size or per_rank
        return [self.collate(mine[s : s + mb]) for s in range(0, len(mine), mb)]

    def collate(self, index: Sequence[int]) -> dict[str, torch.Tensor]:
        if self.rows is not None:
            return self.rows.batch(index)
        return collate_padded([self.examples[i] for i in index], self.pad_id)

    def all_batches(self, micro_batch_size: int) -> list[dict[str, torch.Tensor]]:
        """Every item once, in order, in micro-batches (the last may be smaller): for evaluation."""
        n = self.n_items
        return [self.collate(range(s, min(s + micro_batch_size, n))) for s in range(0, n, micro_batch_size)]

    # ----------------------------------------------------------------------------------- position
    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
