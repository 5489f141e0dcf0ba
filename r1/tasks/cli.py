"""`r1 tasks …`: list the built-in generators, sample items, convert local datasets to task items."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable

from r1.errors import UserError
from r1.io import atomic_write_text
from r1.tasks.base import ANSWER_FORMATS, SPLITS, STYLES, Item
from r1.tasks.templates import TEMPLATES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list built-in task generators, sample items, convert local datasets")
    tsub = p.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)

    ls = tsub.add_parser("list", help="task names, difficulty levels and knobs, one example each")
    ls.set_defaults(func=_list)

    s = tsub.add_parser("sample", help="generate items of one task as JSONL")
    s.add_argument("name", help="task name (see `r1 tasks list`) or rg:NAME for a reasoning-gym dataset")
    s.add_argument("-n", type=int, default=5, help="number of items (default 5)")
    s.add_argument("--difficulty", default=None, help="a level, a range like 2-5, or 'mix' (default: task default)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--split", choices=SPLITS, default="train", help="held-in 'train', held-out 'eval', or 'all'")
    s.add_argument("--template", choices=TEMPLATES, default=None, help="apply a prompt template")
    s.add_argument("--solution", choices=STYLES, default=None, help="add a worked solution in this style")
    s.add_argument("--answer-format", choices=ANSWER_FORMATS, default="tags", help="solution ends in tags or a box")
    s.add_argument("--out", metavar="FILE.jsonl", default=None, help="write here instead of stdout")
    s.set_defaults(func=_sample)

    c = tsub.add_parser("convert", help="read a local GSM8K/MATH/AIME/plain file into task items (JSONL)")
    c.add_argument("path", metavar="FILE", help="a .jsonl or .parquet file")
    c.add_argument("--format", choices=("gsm8k", "math", "aime", "plain"), default="plain")
    c.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help="map an item role (prompt, answer, difficulty, id) to a field of the file; repeatable",
    )
    c.add_argument("--limit", type=int, default=None, help="keep the first N records")
    c.add_argument("--template", choices=TEMPLATES, default=None, help="apply a prompt template")
    c.add_argument("--out", metavar="FILE.jsonl", default=None, help="write here instead of stdout")
    c.set_defaults(func=_convert)


def parse_fields(pairs: Iterable[str]) -> dict[str, str]:
    """`["prompt=question", …]` as a dict; a pair without `=` is a UserError."""
    fields = {}
    for pair in pairs:
        role, sep, name = pair.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise UserError(f"--field {pair!r}: expected ROLE=NAME, e.g. prompt=question")
        fields[role.strip()] = name.strip()
    return fields


def write_jsonl(items: Iterable[Item], out: str | None) -> int:
    """Items as JSONL to `out` (atomically: temp file, then rename) or to stdout; returns the count."""
    lines = [json.dumps(item, ensure_ascii=False, default=str) for item in items]
    text = "".join(line + "\n" for line in lines)
    if out is None:
        sys.stdout.write(text)
        return len(lines)
    path = atomic_write_text(out, text)
    print(f"wrote {len(lines)} items to {path}", file=sys.stderr)
    return len(lines)


def _list(args: argparse.Namespace) -> int:
    from r1.tasks import all_tasks

    for task in all_tasks():
        item = task.example()
        levels = f"{task.levels[0]}..{task.levels[-1]}"
        print(f"{task.name:<10} levels {levels} (default {task.default_level})  {task.description}")
        print(f"{'':<10} knobs: {task.knobs}")
        print(f"{'':<10} e.g.  {item['prompt']}  ->  {item['answer']}")
    print("\nDifficulty: one level, a range like 2-5, or 'mix'. reasoning-gym datasets: rg:NAME (if installed).")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from r1.tasks import apply_template, get_task

    if args.n < 1:  # zero items would be an empty file that every reader of it then refuses
        raise UserError(f"-n must be >= 1, got {args.n}")
    task = get_task(args.name)
    items = task.generate(args.n, seed=args.seed, difficulty=args.difficulty, split=args.split)
    if args.solution:
        for item in items:
            item["solution"] = task.solution(item, args.solution, answer_format=args.answer_format)
    if args.template:
        items = [apply_template(item, args.template) for item in items]
    write_jsonl(items, args.out)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from r1.tasks import apply_template
    from r1.tasks.datasets import load_dataset

    items = load_dataset(args.path, format=args.format, fields=parse_fields(args.field), limit=args.limit)
    if args.template:
        items = [apply_template(item, args.template) for item in items]
    write_jsonl(items, args.out)
    return 0
