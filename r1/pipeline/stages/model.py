"""The model folder a recipe starts from, and the check that transformers reads a folder as r1 does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from r1.errors import UserError
from r1.pipeline.stage import Run, Stage
from r1.pipeline.stages.corpus import corpus_lines, tokenizer_lines
from r1.pipeline.stages.train import hf_check, lm_lines
from r1.readers import read_json
from r1.train.publish import ModelCard


class Base(Stage):
    """The pretraining stage's final checkpoint published to `base/` (HF safetensors, config, tokenizer files, its
    own card and provenance), or a given model folder (its provenance read for the report); then its size and the
    transformers check."""

    name = "base"

    def __init__(self, given: str | None, card: Callable[[Run], ModelCard], template: str, preset: str) -> None:
        self.given, self.card, self.template, self.preset = given, card, template, preset
        self.folder = Path(given) if given else Path("base")
        self.outputs = (self.folder / "config.json",)

    def plan(self, run: Run):
        from r1.pipeline import plan

        if run.scale == "paper":
            return plan.Plan(*plan.model_from(run, None, plan.PAPER_MODEL), note="DeepSeek-V3-Base, given")
        made = "given" if self.given else "published from the pretraining stage"
        return plan.Plan(*plan.model_from(run, run.path(self.folder)), note=made)

    def run(self, run: Run) -> None:
        from r1.model.checkpoint import load_pretrained
        from r1.model.info import model_info
        from r1.train.publish import publish_model

        folder, s = run.path(self.folder), run.summary
        if self.given is None:
            publish_model(
                Path(s["pretrain"]["checkpoint"]), folder, self.card(run), run.path("tokenizer"), self.template
            )
        elif not (folder / "config.json").is_file():
            raise UserError(f"--base {folder}: not a model folder (no config.json)")
        provenance = folder / "provenance.json"
        if self.given is not None and provenance.is_file():  # how the given base was made, for the report
            made = read_json(provenance)
            s["base_provenance"] = {k: made[k] for k in ("command", "commit") if k in made}
            weights = made.get("sha256") or made.get("files", {}).get("model.safetensors")  # older folders: "sha256"
            if weights:
                s["base_provenance"]["sha256"] = weights
            s.update({k: made[k] for k in ("corpus", "tokenizer", "pretrain") if k in made})
        cfg = load_pretrained(folder).config
        info = model_info(cfg)
        s["model"] = {
            "preset": self.preset if self.given is None else cfg.model_type,
            "total_params": info.total,
            "active_params": info.active,
            "mtp_params": info.mtp,
            "kv_elements_per_token_per_layer": info.kv_elements_per_token_per_layer,
        }
        s["hf_check"] = hf_check(run, folder)

    def report(self, run: Run) -> list[str]:
        s, lines = run.summary, []
        m = s["model"]
        if self.given is None:
            made = "trained from scratch"
        elif "base_provenance" in s:
            prov = s["base_provenance"]
            made = (
                f"from `{run.path(self.folder)}`, made by `{prov.get('command')}` at commit {prov.get('commit', '?')}"
            )
        else:
            made = f"from `{run.path(self.folder)}` (given with --base)"
        lines = [
            f"**Model**: a `{m['preset']}` model {made}: {m['total_params']:,} parameters, "
            f"{m['active_params']:,} active per token, MTP {m['mtp_params']:,}."
        ]
        if self.given is not None:  # what the stages that made it recorded, from its provenance
            where = "(In the run that made the base.)"
            lines += corpus_lines(s, where) + tokenizer_lines(s) + lm_lines(s.get("pretrain", {}), run.out, False)
        if s.get("hf_check"):
            h = s["hf_check"]
            lines.append(
                f"**Checkpoints**: the base{' and `model/`' if s.get('hf_check_final') else ''} load in r1, "
                f"`r1 chat`, `r1 serve` and transformers {h['transformers']} (max |Δlogits| vs r1 = "
                f"{h['max_abs_logit_diff']:.1e})."
            )
        return lines
