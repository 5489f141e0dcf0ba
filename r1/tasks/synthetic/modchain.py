"""modchain in Chinese: the problems, answers and steps of `modchain`, asked in Chinese.

`modchain` (r1.tasks.synthetic.classic) is left as it is, because the shipped base and the main job depend on its
exact items. This variant keeps the English question as its split key, so a problem held out in one language is
held out in both.
"""

from __future__ import annotations

import random

from r1.tasks.base import Item
from r1.tasks.synthetic.classic import ModChain
from r1.tasks.synthetic.worked import write_solution


def modchain_question_zh(expr: str) -> str:
    return f"从左到右计算{expr}，每一步只保留个位数。"


class ModChainZh(ModChain):
    name = "modchain_zh"
    description = "modchain asked in Chinese (meta.lang='zh'): the same family, one split key per problem with modchain"
    lang = "zh"

    def make(self, rng: random.Random, level: str) -> Item:
        made = super().make(rng, level)
        question_en = made["question"]
        expr = question_en.split()[1]
        made["question"] = modchain_question_zh(expr)
        made["meta"] = {"lang": "zh", "family": "modchain", "question_en": question_en}
        return made

    def key(self, item: Item) -> str:
        return str(item["meta"]["question_en"])

    solution = write_solution
