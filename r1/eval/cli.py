"""`r1 eval`: R1-protocol evaluation of a model, or of pre-generated completions, on tasks or local datasets.

Items come from built-in generators (`--task NAME`, repeatable; held-out split by default) and/or a local file
(`--data FILE --format gsm8k|math|aime|plain`), in that order. Completions come from the project engine
(`--model DIR`) or from a JSONL file (`--completions FILE`), one line per sample:

    {"index": 0, "text": "<think>…</think> <answer>5</answer>", "finish_reason": "stop", "num_tokens": 17}

`index` is the item's position in the item list these flags produce (the same list `r1 tasks sample NAME --split
eval` writes for one task); `prompt` (the templated prompt or the bare question) may be given instead. Every item
needs the same number of samples, which is k. What a line says about its item (`task`, `prompt`, `question`) must
match the item it is matched to: completions generated for other items (another task, seed or item count) are
an error naming the line, never scored against the wrong answers.

Without `--template`, `--model DIR` asks the model in its own format, as transformers would: the chat template of
its tokenizer_config.json. A folder whose template renders a question as a plain R1-Zero prompt (what `r1 run`
publishes) is evaluated with that plain template; any other chat template gets the R1 chat usage ("r1"). If most
samples run into --max-new-tokens, or none has an answer to extract, a one-line warning names the likely cause.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r1.cli import add_command, check_at_least
from r1.dtypes import DTYPE_CHOICES, DTYPE_HELP
from r1.errors import UserError
from r1.eval.evaluate import GenerateFn, health_warning
from r1.readers import iter_jsonl
from r1.tasks.base import SPLITS, Item, question_of
from r1.tasks.templates import TEMPLATES


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "eval", __doc__)
    src = p.add_argument_group("items")
    src.add_argument("--task", action="append", default=[], metavar="NAME", help="a task generator; repeatable")
    src.add_argument("--difficulty", default=None, help="level, range like 2-5, or 'mix' (default: task default)")
    src.add_argument("--n-items", type=int, default=None, help="items per task (default 50); caps --data records")
    src.add_argument("--seed", type=int, default=0, help="item seed, and the sampling seed")
    src.add_argument("--split", choices=SPLITS, default="eval", help="generated items: held-out 'eval' (default)")
    src.add_argument("--data", metavar="FILE", default=None, help="a local .jsonl or .parquet dataset")
    src.add_argument("--format", choices=("gsm8k", "math", "aime", "plain"), default="plain", help="--data format")
    src.add_argument("--field", action="append", default=[], metavar="ROLE=NAME", help="--data field mapping")
    gen = p.add_argument_group("generation")
    who = gen.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--model", metavar="DIR", default=None, help="generate with the r1 engine from this model folder (or base-tiny)"
    )
    who.add_argument("--completions", metavar="FILE", default=None, help="score pre-generated completions (JSONL)")
    gen.add_argument(
        "--template",
        choices=TEMPLATES,
        default=None,
        help="prompt template (default: the one the model's own chat template renders; r1-zero with --completions)",
    )
    gen.add_argument("-k", type=int, default=None, help="samples per item (default 8; inferred from --completions)")
    gen.add_argument("--temperature", type=float, default=0.6)
    gen.add_argument("--top-p", type=float, default=0.95)
    gen.add_argument("--max-new-tokens", type=int, default=1024)
    gen.add_argument("--batch-size", type=int, default=16, help="items per generate call")
    gen.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help="with --model: " + DTYPE_HELP)
    gen.add_argument(
        "--reward",
        action="append",
        default=[],
        metavar="NAME",
        help="also report the mean of these rewards (weight 1 each); repeatable",
    )
    out = p.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", default=None, help="report folder (default runs/eval/<timestamp>)")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def collect_items(
    tasks: Sequence[str],
    difficulty: str | None,
    n_items: int | None,
    seed: int,
    split: str,
    data: str | None = None,
    format: str = "plain",
    fields: dict[str, str] | None = None,
) -> list[Item]:
    """The evaluation items: each task's generated items in order, then the dataset's records."""
    from r1.tasks import get_task
    from r1.tasks.datasets import load_dataset

    if not tasks and not data:
        raise UserError("r1 eval: nothing to evaluate; give --task NAME and/or --data FILE")
    items: list[Item] = []
    for name in tasks:
        items += get_task(name).generate(
            50 if n_items is None else n_items, seed=seed, difficulty=difficulty, split=split
        )
    if data:
        items += load_dataset(data, format=format, fields=fields, limit=n_items)
    return items


def read_completions(path: str | Path, items: Sequence[Item], template: str | None) -> list[list[dict[str, Any]]]:
    """Samples per item from a completions JSONL file (see the module docstring); errors name file and line."""
    from r1.tasks.templates import apply_template

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: completions file not found")
    by_prompt: dict[str, int] = {}
    prompts_of: list[set[str]] = []  # the texts that may stand for each item: question, templated prompt
    for i, item in enumerate(items):
        templated = apply_template(item, template) if template else item
        keys = [question_of(item), item.get("prompt"), templated.get("prompt")]
        keys += [m.get("content") for m in templated.get("messages", []) if m.get("role") == "user"]
        prompts_of.append({key.strip() for key in keys if isinstance(key, str)})
        for key in prompts_of[-1]:
            by_prompt.setdefault(key, i)
    if not items:
        raise UserError(f"{path}: there are no items to match the completions to")
    grouped: list[list[dict[str, Any]]] = [[] for _ in items]
    for where, _lineno, rec in iter_jsonl(path):
        if not isinstance(rec.get("text"), str):
            raise UserError(f"{where}: field 'text': expected a string")
        if "index" in rec:
            index = rec["index"]
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(items):
                raise UserError(f"{where}: field 'index': expected an integer in 0..{len(items) - 1}, got {index!r}")
        elif isinstance(rec.get("prompt"), str):
            index = by_prompt.get(rec["prompt"].strip())
            if index is None:
                raise UserError(f"{where}: field 'prompt': matches none of the {len(items)} items")
        else:
            raise UserError(f"{where}: field 'index' (or 'prompt') is missing")
        _check_claims(where, rec, index, items[index], prompts_of[index])
        finish = rec.get("finish_reason", "stop")
        if finish not in ("stop", "length"):
            raise UserError(f"{where}: field 'finish_reason': expected 'stop' or 'length', got {finish!r}")
        num_tokens = rec.get("num_tokens")
        if num_tokens is not None and (not _is_count(num_tokens)):
            raise UserError(f"{where}: field 'num_tokens': expected an integer >= 0, got {num_tokens!r}")
        grouped[index].append({"text": rec["text"], "finish_reason": finish, "num_tokens": num_tokens})
    if not any(grouped):
        raise UserError(f"{path}: no completions (the file is empty or blank)")
    counts = {len(g) for g in grouped}
    if len(counts) != 1 or 0 in counts:
        missing = next((i for i, g in enumerate(grouped) if not g), None)
        if missing is not None:
            raise UserError(f"{path}: item {missing} has no completions; every one of the {len(items)} items needs k")
        detail = ", ".join(f"item {i}: {len(g)}" for i, g in enumerate(grouped[:50]) if len(g) != len(grouped[0]))
        raise UserError(f"{path}: items have different numbers of completions (item 0: {len(grouped[0])}, {detail})")
    return grouped


def _check_claims(where: str, rec: dict[str, Any], index: int, item: Item, prompts: set[str]) -> None:
    """What a completion line says about its item must hold for the item it was matched to."""
    task = str(item.get("task", "-"))
    if "task" in rec and str(rec["task"]) != task:
        raise UserError(
            f"{where}: field 'task' is {rec['task']!r} but item {index} is a {task!r} item; these completions were "
            "made for other items (check --task, --data, --n-items, --seed, --split)"
        )
    for name in ("prompt", "question"):
        text = rec.get(name)
        if "index" in rec and isinstance(text, str) and text.strip() not in prompts:
            raise UserError(
                f"{where}: field {name!r} is not the prompt of item {index} ({_short(question_of(item))}); these "
                "completions were made for other items (check --task, --data, --n-items, --seed, --split, --template)"
            )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _short(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def check_args(args: argparse.Namespace) -> None:
    """Numeric flags in range and the output folder usable, before any item is generated or model loaded."""
    check_at_least(args, n_items=1, k=1, max_new_tokens=1, batch_size=1, temperature=0)
    if not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out}: is a file; the report folder must be a directory")


def other_templates(template: str | None) -> list[str]:
    return [t for t in TEMPLATES if t != template]


def replay_generate_fn(samples: list[list[dict[str, Any]]]) -> GenerateFn:
    """A GenerateFn that hands out pre-generated samples in item order (evaluate() asks in order)."""
    cursor = 0

    def generate(batch: list[Item], n: int, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        nonlocal cursor
        out = [group[:n] for group in samples[cursor : cursor + len(batch)]]
        cursor += len(batch)
        return out

    return generate


def engine_generate_fn(model_dir: str, dtype: str = "auto") -> GenerateFn:
    """A GenerateFn backed by the project engine, loading the model and tokenizer in `model_dir`."""
    from r1.assets import model_path
    from r1.engine import Engine
    from r1.engine.adapters import make_generate_fn

    return make_generate_fn(Engine.from_pretrained(model_path(model_dir), dtype=dtype, speculative="off"))


def template_for_model(model_dir: str | Path) -> tuple[str, str]:
    """The prompt template that asks the model in `model_dir` in its own format, and why: the plain template its
    chat template renders a question as (the chat templates `r1 run` publishes do), else "r1", the R1 chat usage
    rendered by that chat template."""
    from r1.tasks.templates import PLAIN_TEMPLATES, r1_zero_prompt
    from r1.tokenizer import Tokenizer

    tok = Tokenizer.load(model_dir)
    probe = "What is 2 + 3?"
    rendered = tok.apply_chat_template([{"role": "user", "content": probe}], add_generation_prompt=True)
    bos = tok.bos_token or ""
    text = rendered.removeprefix(bos).strip() if bos else rendered.strip()
    for name in PLAIN_TEMPLATES:
        if text == r1_zero_prompt(probe, preamble=name == "r1-zero"):
            return name, "the plain prompt its chat template renders"
    return "r1", "the R1 chat usage through its chat template"


def _run(args: argparse.Namespace) -> int:
    from r1.assets import model_path
    from r1.eval.evaluate import evaluate
    from r1.eval.report import markdown, write_report
    from r1.tasks.cli import parse_fields

    check_args(args)
    where = (args.task, args.difficulty, args.n_items, args.seed, args.split, args.data, args.format)
    items = collect_items(*where, parse_fields(args.field))
    template = args.template
    if args.completions:
        template = template or "r1-zero"
        samples = read_completions(args.completions, items, template)
        k = len(samples[0])
        if args.k is not None and args.k != k:
            raise UserError(f"{args.completions}: has {k} completions per item but -k {args.k} was given")
        generate_fn = replay_generate_fn(samples)
    else:
        k = 8 if args.k is None else args.k
        generate_fn = engine_generate_fn(args.model, dtype=args.dtype)
        if template is None:
            template, why = template_for_model(model_path(args.model))
            print(f"template: {template} ({why}; --template to choose another)", file=sys.stderr)
    if k < 1:
        raise UserError(f"-k must be >= 1, got {k}")
    result = evaluate(
        items,
        generate_fn,
        k=k,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        template=template,
        seed=args.seed,
        reward_spec=args.reward or None,
        progress=not args.no_progress,
        batch_size=args.batch_size,
    )
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out) if args.out else Path("runs") / "eval" / stamp
    source = {
        "tasks": args.task,
        "difficulty": args.difficulty,
        "split": args.split,
        "data": args.data,
        "format": args.format if args.data else None,
        "model": args.model,
        "completions": args.completions,
    }
    paths = write_report(result, out_dir, extra_config=source)
    print(markdown(result, {**result.config, **source}))
    warning = health_warning(result, other_templates(template))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {paths['markdown']}, {paths['json']}, {paths['samples']}", file=sys.stderr)
    return 0
