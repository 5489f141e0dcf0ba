"""Pretraining: next-token loss on packed documents, plus DeepSeek-V3's MTP loss and MoE balancing.

The objective is the model's own (`Transformer.forward` with labels): L = L_next + λ·mean_k L_MTP,k + α·Σ L_balance,
with λ, α and the bias speed γ in the model config (`model.mtp_loss_weight=0.1` changes λ). Data: `data.paths`,
`data.builtin` documents, or `data=` from Python (`PretrainStage(cfg, data=[...])`), packed with segment ids or
length-bucketed (`r1.data.packing`). MTP targets near a packing boundary can belong to the next document: one target
in `seq_len` per boundary at depth 1; the main loss is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from r1.data.packing import BatchStream, Example, read_records, tokenize_records
from r1.model.transformer import IGNORE_INDEX
from r1.train.core import LossOutput, Stage, StageContext, rank_share


class PretrainStage(Stage):
    name = "pretrain"
    split_documents = True  # a long document continues in the next row
    context_keys = ("data.seq_len",)

    stream: BatchStream | None = None
    eval_stream: BatchStream | None = None

    # ------------------------------------------------------------------------------------------ data
    def records(self) -> list[dict[str, Any]]:
        """The training records: given documents, else data files plus built-in corpus documents."""
        if self.data is not None:
            return [dict(r) for r in self.data]
        data = self.cfg.data
        records = list(read_records(data.paths, data.text_field))
        if data.builtin:
            from r1.data.corpus import build_corpus

            records += build_corpus(data.builtin, seed=self.cfg.train.seed)
        return records

    def tokenizer_texts(self) -> Iterator[str]:
        for r in self.records():
            if isinstance(r.get(self.cfg.data.text_field), str):
                yield r[self.cfg.data.text_field]
            elif isinstance(r.get("prompt"), str):
                yield r["prompt"] + r.get("response", "")

    def examples(self, records: list[dict[str, Any]], tokenizer: Any) -> list[Example]:
        d = self.cfg.data
        return tokenize_records(
            records,
            tokenizer,
            text_field=d.text_field,
            loss_on=d.loss_on,
            add_bos=d.add_bos,
            vocab_size=self.ctx.model_config.vocab_size,
        )

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        d = self.cfg.data
        pad = ctx.model_config.pad_token_id
        pad = pad if pad is not None else 0
        self.examples_count = 0
        train = self.examples(self.records(), ctx.tokenizer)
        self.examples_count = len(train)
        rows = {"seq_len": d.seq_len, "pad_id": pad, "batching": d.batching, "split_documents": self.split_documents}
        self.stream = BatchStream(
            train, batch_size=self.cfg.train.batch_size, seed=self.cfg.train.seed, shuffle=d.shuffle, **rows
        )
        eval_records = self.eval_data if self.eval_data is not None else list(read_records(d.eval_paths, d.text_field))
        if eval_records:
            ev = self.examples([dict(r) for r in eval_records], ctx.tokenizer)
            self.eval_stream = BatchStream(ev, batch_size=1, shuffle=False, **rows)

    def next_batches(self) -> list[dict[str, torch.Tensor]]:
        return self.stream.next_batches(self.ctx.rank, self.ctx.world, self.ctx.micro_batch_size)

    def eval_batches(self) -> list[dict[str, torch.Tensor]]:
        if self.eval_stream is None:
            return []
        batches = self.eval_stream.all_batches(self.ctx.micro_batch_size)
        return rank_share(batches[: self.cfg.train.eval_batches * self.ctx.world], self.ctx.rank, self.ctx.world)

    # ------------------------------------------------------------------------------------------ loss
    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        out = model(
            batch["input_ids"],
            positions=batch["positions"],
            labels=batch["labels"],
            segment_ids=batch.get("segment_ids"),
        )
        targets = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        real = int((batch["segment_ids"] >= 0).sum()) if "segment_ids" in batch else int(batch["n_tokens"])
        metrics: dict[str, Any] = {"lm_loss": out.lm_loss.detach()}
        if out.mtp_loss is not None:
            metrics["mtp_loss"] = out.mtp_loss.detach()
        if out.balance_loss is not None:
            metrics["balance_loss"] = out.balance_loss.detach()
        return LossOutput(
            loss=out.loss, weight=float(targets), tokens=real, metrics=metrics, expert_counts=out.expert_counts
        )

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return self.stream.state_dict() if self.stream is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.stream.load_state_dict(state)

    def describe(self) -> dict[str, Any]:
        if self.stream is None:
            return {}
        s = self.stream
        items = s.rows.input_ids.numel() if s.rows is not None else sum(len(e) for e in s.examples)
        return {
            "documents": self.examples_count,
            "train_items": s.n_items,
            "train_tokens": int(items),
            "steps_per_epoch": s.steps_per_epoch,
        }
