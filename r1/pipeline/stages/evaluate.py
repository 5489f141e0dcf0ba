"""Held-out evaluation of a model folder as a pipeline stage, and the tables and checks built on it.

Each named run (free sampling at some temperature, or a style forced by a prefill) goes through the engine and
the evaluator (`r1.eval.evaluate`) → `eval/<label>/<run>/`; the table level → run → metrics (pass@1 as the mean
over k samples, pass@k, cons@k, format rate, length, and the reasoning / direct split) goes to
`summary["eval"]["tables"][label]`, with the groups "trained" (the levels trained on) and "all".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1.pipeline.stage import Run, Stage

Table = dict[str, dict[str, dict[str, Any]]]
KEYS = ("pass@", "cons@", "format_rate", "length_mean", "truncated_share", "reward_mean")  # reward: a run's reward_spec


@dataclass
class Evaluate(Stage):
    """`runs(run, items)` → {run name: evaluate() arguments} over `items(run)`, for the model folder `model`."""

    name: str
    model: str | Path
    label: str
    title: str
    items: Callable[[Run], list]
    runs: Callable[[Run, list], dict[str, dict[str, Any]]]
    trained: list[str]  # the levels trained on: the "trained" group
    header: dict[str, Any]  # what summary["eval"] says about every evaluation (k, levels)
    max_new_tokens: int
    then: Callable[[Run, Table], None] | None = None

    def __post_init__(self) -> None:
        self.outputs = (f"eval/{self.label}",)

    def plan(self, run: Run):
        from r1.pipeline import plan

        if run.scale == "paper":  # the model the stages before planned, on R1's benchmarks
            benchmarks = ", ".join(f"{b} {n}×{k}" for b, (n, k) in plan.PAPER_EVAL.items())
            note = f"R1's protocol: {benchmarks} ≤ {plan.PAPER_EVAL_TOKENS:,} tokens"
            return plan.Plan(*plan.model_from(run, None), "R1 eval", forward=plan.paper_eval_tokens(), note=note)
        runs = self.runs(run, self.items(run))
        forward = sum(len(kw["items"]) * kw.get("k", 1) for kw in runs.values()) * self.max_new_tokens
        note = f"{len(runs)} runs ({', '.join(runs)}) ≤ {self.max_new_tokens} tokens"
        return plan.Plan(*plan.model_from(run, run.path(self.model)), forward=forward, note=note)

    def run(self, run: Run) -> None:
        from r1.engine.adapters import make_generate_fn
        from r1.eval.evaluate import evaluate
        from r1.eval.report import write_report

        items = self.items(run)
        engine = run.engine(self.model)
        generate = with_prefill(make_generate_fn(engine))
        table: Table = {}
        for run_name, kw in self.runs(run, items).items():
            print(f"      {self.label}: {run_name}", flush=True)
            kw.setdefault("template", None)
            result = evaluate(kw.pop("items"), generate, max_new_tokens=self.max_new_tokens, seed=run.config.seed, **kw)
            write_report(result, run.path(f"eval/{self.label}/{run_name}"))
            for row in result.by_difficulty:
                cell = table.setdefault(row["difficulty"], {}).setdefault(run_name, {})
                cell.update({k: row[k] for k in row if k.startswith(KEYS)})
                cell["items"] = row["n_items"]
            for level, stats in style_stats(result.samples, set(self.trained)).items():
                table.setdefault(level, {}).setdefault(run_name, {}).update(stats)
            for group, keep in (("trained", set(self.trained)), ("all", None)):
                rows = [r for r in result.by_difficulty if keep is None or r["difficulty"] in keep]
                n = sum(r["n_items"] for r in rows) or 1
                cell = table.setdefault(group, {}).setdefault(run_name, {})
                metrics = [k for k in rows[0] if k.startswith(KEYS)] if rows else []
                cell.update({k: sum(r[k] * r["n_items"] for r in rows) / n for k in metrics})
                cell["items"] = n
        e = run.summary.setdefault("eval", {"items": len(items), **self.header, "tables": {}})
        e["tables"][self.label] = table
        if self.then is not None:
            self.then(run, table)

    def report(self, run: Run) -> list[str]:
        e = run.summary.get("eval", {})
        tab = e.get("tables", {}).get(self.label)
        return eval_section(e, tab, self.title, self.label) if tab else []


def with_prefill(generate: Callable[..., Any]) -> Callable[..., Any]:
    """A GenerateFn that puts each item's prefill (meta.prefill) back in front of its samples, so answers are
    extracted from the whole response (a forced direct answer's `<answer>` tag is in the prefill)."""

    def fn(items: list[dict[str, Any]], n: int, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        outs = generate(items, n, params)
        out = []
        for it, samples in zip(items, outs):
            prefill = (it.get("meta") or {}).get("prefill", "")
            out.append(
                [{"text": prefill + s} if isinstance(s, str) else {**s, "text": prefill + s["text"]} for s in samples]
            )
        return out

    return fn


def style_stats(samples: list[dict[str, Any]], trained: set[str]) -> dict[str, dict[str, float]]:
    """Per level, for trained levels together ("trained") and overall ("all"): the share of samples that reason,
    accuracy of reasoning and of direct samples, and the share of reasoning samples that reflect ("wait"), by the
    judge's rules (`reasons`, `reflects` in the evaluator's records). Reported apart because a change in the style mix
    alone moves overall accuracy and reflection rates."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        rec = {"long": s["reasons"], "correct": bool(s["correct"]), "wait": s["reflects"]}
        for key in (s["difficulty"], "all") + (("trained",) if s["difficulty"] in trained else ()):
            groups.setdefault(key, []).append(rec)
    out = {}
    for key, recs in groups.items():
        longs = [r for r in recs if r["long"]]
        shorts = [r for r in recs if not r["long"]]
        out[key] = {
            "think_share": len(longs) / len(recs),
            "acc_long": sum(r["correct"] for r in longs) / len(longs) if longs else None,
            "acc_direct": sum(r["correct"] for r in shorts) / len(shorts) if shorts else None,
            "wait_in_long": sum(r["wait"] for r in longs) / len(longs) if longs else None,
            "wait": sum(r["wait"] for r in recs) / len(recs),
        }
    return out


def amplify_check(cell: dict[str, Any], k: int) -> dict[str, Any]:
    """Does the base have something for RL to amplify? RL only reweights what the model already samples: it needs
    right answers among the samples it does not yet prefer (pass@k well above pass@1), and, for the R1-Zero effect,
    a long form that is more accurate than answering directly (see shared/notes/r1-zero-at-tiny-scale.md)."""
    p1, pk = cell.get("pass@1", 0.0), cell.get(f"pass@{k}", 0.0)
    share, long_acc, direct_acc = cell.get("think_share") or 0.0, cell.get("acc_long"), cell.get("acc_direct")
    headroom = pk - p1 >= 0.15
    samples_long = share >= 0.02
    pays = long_acc is not None and (direct_acc is None or long_acc >= direct_acc + 0.10)
    ok = headroom and samples_long and pays
    facts = (
        f"pass@1 {100 * p1:.0f}% vs pass@{k} {100 * pk:.0f}%; reasons in {100 * share:.0f}% of samples, accurate "
        f"{pct(long_acc)}% when it reasons vs {pct(direct_acc)}% when it answers directly"
    )
    if long_acc is not None:
        # RL's first and cheapest move is to sample the long form always; that alone would give about acc_long
        facts += (
            f". Switching every answer to reasoning alone would give pass@1 ≈ {pct(long_acc)}% "
            f"({signed(long_acc, p1)} points)"
        )
    if ok:
        text = f"The base has something to amplify: {facts}."
    else:
        why = [
            w
            for w, bad in (
                (f"pass@{k} is barely above pass@1, so there is little for RL to reweight", not headroom),
                ("it almost never writes a think block", not samples_long),
                ("reasoning is not more accurate than answering directly, so RL will favour short answers", not pays),
            )
            if bad
        ]
        text = f"WARNING: the base has little to amplify ({facts}): {'; '.join(why)}. Expect RL to gain little."
    return {
        "ok": ok,
        "headroom": pk - p1,
        "think_share": share,
        "acc_long": long_acc,
        "acc_direct": direct_acc,
        "text": text,
    }


# ================================================================================================ tables
def pct(x: Any) -> str:
    return f"{100 * x:.0f}" if isinstance(x, int | float) else "–"


def signed(a: Any, b: Any) -> str:
    return f"{100 * (a - b):+.0f}" if isinstance(a, int | float) and isinstance(b, int | float) else "–"


def num(x: Any) -> str:
    return f"{x:.1f}" if isinstance(x, int | float) else "–"


def _order(tab: dict[str, Any]) -> list[str]:
    return sorted((x for x in tab if x.isdigit()), key=int) + [x for x in ("trained", "all") if x in tab]


def _label(e: dict[str, Any], level: str) -> str:
    from r1.pipeline.stages.corpus import levels

    if level == "trained":
        return f"**{e['trained_levels']}**"
    if level == "all":
        return "**all**"
    return level if level in set(levels(e["trained_levels"])) else f"{level} (beyond corpus)"


def level_table(e: dict[str, Any], levels: list[str], columns: dict[str, Callable[[str], str]]) -> list[str]:
    """A markdown table with one row per level (then the trained levels and all): `columns` header → cell(level)."""
    lines = ["| level | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    return lines + [f"| {_label(e, lv)} | " + " | ".join(cell(lv) for cell in columns.values()) + " |" for lv in levels]


def before_after(e: dict[str, Any], base: Table, final: Table, title: str) -> list[str]:
    """The table of two evaluations of the same items, `base → final` in each cell."""
    k = e["k"]

    def pair(key: str, run: str = "free_t1.0", fmt: Callable[[Any], str] = pct) -> Callable[[str], str]:
        get = lambda tab, lv: tab.get(lv, {}).get(run, {}).get(key)  # noqa: E731
        return lambda lv: f"{fmt(get(base, lv))} → {fmt(get(final, lv))}"

    columns = {
        "pass@1 T=1.0": pair("pass@1"),
        f"pass@{k} T=1.0": pair(f"pass@{k}"),
        f"cons@{k} T=1.0": pair(f"cons@{k}"),
        "pass@1 T=0.6": pair("pass@1", "free_t0.6"),
        "format": pair("format_rate"),
        "length": pair("length_mean", fmt=num),
        "reasons": pair("think_share"),
        "wait (all)": pair("wait"),
        "wait in reasoning": pair("wait_in_long"),
    }
    return [
        f"## Before → after {title} (held-out: {e['items']} eval-split problems, levels {e['levels']})",
        "",
        f"Free sampling, {k} samples per problem; pass@1 is the mean over the samples, pass@{k} whether any is "
        f"right, cons@{k} the majority vote. *reasons*: share of samples with a non-empty think block; *wait*: share "
        'of all samples, and of those reasoning, that say "wait". Levels beyond the corpus were never trained on, '
        "in pretraining or RL. In %, length in tokens.",
        "",
        *level_table(e, _order(final), columns),
    ]


def eval_section(e: dict[str, Any], tab: Table, title: str, name: str) -> list[str]:
    k = e["k"]
    cell = lambda run, key: lambda lv: pct(tab[lv].get(run, {}).get(key))  # noqa: E731
    ran = {r for cells in tab.values() for r in cells}  # a recipe that runs fewer evaluations gets no empty columns
    columns = {
        "pass@1 T=1.0": ("free_t1.0", "pass@1"),
        f"pass@{k} T=1.0": ("free_t1.0", f"pass@{k}"),
        f"cons@{k} T=1.0": ("free_t1.0", f"cons@{k}"),
        "pass@1 T=0.6": ("free_t0.6", "pass@1"),
        f"pass@{k} T=0.6": ("free_t0.6", f"pass@{k}"),
        "forced direct": ("forced_direct", "pass@1"),
        "forced steps": ("forced_steps", "pass@1"),
    }
    free = {header: cell(run, key) for header, (run, key) in columns.items() if run in ran}
    style = {
        "reasons": cell("free_t1.0", "think_share"),
        "accuracy when reasoning": cell("free_t1.0", "acc_long"),
        "accuracy when direct": cell("free_t1.0", "acc_direct"),
        '"wait" in reasoning': cell("free_t1.0", "wait_in_long"),
    }
    return [
        "",
        f"### Held-out evaluation, {title} (`eval/{name}/`)",
        "",
        "Forced styles are greedy, with the response prefilled (`<think>\\n</think>\\n<answer>` for direct; "
        "`<think>\\n` + the question's first digit for step by step): the model's best answer in that style. In %.",
        "",
        *level_table(e, _order(tab), free),
        "",
        "By style, free sampling at T=1.0 (what RL samples from):",
        "",
        *level_table(e, _order(tab), style),
    ]
