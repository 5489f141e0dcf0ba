"""Non-reasoning tasks: short instructions whose good answer needs no reasoning, in English and in Chinese.

What DeepSeek-R1's third stage adds to the reasoning data (writing, factual QA, self-cognition, translation; trivial
queries answered without a chain of thought; recipe §3.3), at the size of the tiny world:

| level     | e.g.                                                   | answer                          |
|-----------|--------------------------------------------------------|---------------------------------|
| format    | Write cat in capital letters. / 用汉字写出数字7。         | CAT / 七                         |
| name      | Name a fruit. / 说出一种动物。                            | any member of the category      |
| translate | Translate apple into Chinese. / “猫”用英文怎么说？        | 苹果 / cat                       |
| list      | List three colors. / 列出从 3 到 6 的整数。              | any three colors / 3、4、5、6     |
| greet     | Hello! / 你是谁？                                        | a fixed reply                    |

Chinese requests put the slot (a category) first and a comma after it: Chinese has no spaces, so without a boundary
the tokenizer's merges run across phrasing and slot, and a held-out pairing reaches the model as tokens it never
saw. Greetings are a fixed set with nothing to hold out: they all share one split key, in the train split.

Every item carries what its verifier needs in `meta` (`accept`: the acceptable answers; or `members` and `count`
for a list of distinct category members; or `sequence` for a fixed list). The split key is the question text, so a
held-out item is a new combination of a phrasing and a word, both seen in training in other combinations.
"""

from __future__ import annotations

import random
import re
from typing import Any

from r1.tasks.base import Item, Task
from r1.tasks.synthetic.worked import finish

# (English, Chinese, category)
WORDS: list[tuple[str, str, str]] = [
    ("apple", "苹果", "fruit"), ("pear", "梨", "fruit"), ("banana", "香蕉", "fruit"), ("orange", "橙子", "fruit"),
    ("grape", "葡萄", "fruit"), ("peach", "桃子", "fruit"), ("lemon", "柠檬", "fruit"), ("melon", "瓜", "fruit"),
    ("red", "红色", "color"), ("blue", "蓝色", "color"), ("green", "绿色", "color"), ("yellow", "黄色", "color"),
    ("black", "黑色", "color"), ("white", "白色", "color"), ("purple", "紫色", "color"), ("brown", "棕色", "color"),
    ("cat", "猫", "animal"), ("dog", "狗", "animal"), ("bird", "鸟", "animal"), ("fish", "鱼", "animal"),
    ("horse", "马", "animal"), ("cow", "牛", "animal"), ("sheep", "羊", "animal"), ("tiger", "老虎", "animal"),
    ("rabbit", "兔子", "animal"), ("duck", "鸭子", "animal"),
    ("water", "水", "thing"), ("book", "书", "thing"), ("tree", "树", "thing"), ("sun", "太阳", "thing"),
    ("moon", "月亮", "thing"), ("rain", "雨", "thing"), ("door", "门", "thing"), ("chair", "椅子", "thing"),
    ("school", "学校", "thing"), ("river", "河", "thing"), ("house", "房子", "thing"), ("bread", "面包", "thing"),
]  # fmt: skip
CATEGORIES = {"fruit": ("fruit", "fruits", "水果"), "color": ("color", "colors", "颜色"),
              "animal": ("animal", "animals", "动物")}  # fmt: skip
NUMBERS_EN = "zero one two three four five six seven eight nine ten eleven twelve".split()
NUMBERS_ZH = list("零一二三四五六七八九十") + ["十一", "十二"]
COUNT_EN = {2: "two", 3: "three", 4: "four"}
COUNT_ZH = {2: "两", 3: "三", 4: "四"}
GREETINGS: list[tuple[str, str, str]] = [  # (lang, prompt, reply)
    ("en", "Hello!", "Hello! How can I help you?"),
    ("en", "Hi there!", "Hello! How can I help you?"),
    ("en", "Good morning!", "Good morning! How can I help you?"),
    ("en", "Who are you?", "I am a small assistant."),
    ("en", "What are you?", "I am a small assistant."),
    ("en", "Thank you!", "You are welcome!"),
    ("en", "Thanks a lot!", "You are welcome!"),
    ("en", "Goodbye!", "Goodbye! Have a nice day!"),
    ("zh", "你好！", "你好！有什么可以帮你的？"),
    ("zh", "你好呀！", "你好！有什么可以帮你的？"),
    ("zh", "早上好！", "早上好！有什么可以帮你的？"),
    ("zh", "你是谁？", "我是一个小助手。"),
    ("zh", "你是什么？", "我是一个小助手。"),
    ("zh", "谢谢！", "不客气！"),
    ("zh", "非常感谢！", "不客气！"),
    ("zh", "再见！", "再见！祝你愉快！"),
]
LIST_SEP = {"en": ", ", "zh": "、"}
# Two phrasings per language for each mapping (bird -> BIRD, 7 -> seven): the split key is the question, so with one
# each a word's mapping was held out in both languages for some words (BLUE, WHITE) and never taught at all.
FORMAT_PHRASINGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("upper", "en"): ("Write {} in capital letters.", "Write {} in upper case."),
    ("upper", "zh"): ("把 {} 写成大写字母。", "{} 的大写是什么？"),
    ("lower", "en"): ("Write {} in small letters.", "Write {} in lower case."),
    ("lower", "zh"): ("把 {} 写成小写字母。", "{} 的小写是什么？"),
    ("number", "zh"): ("用汉字写出数字{}。", "数字{}用汉字怎么写？"),
    ("number_en", "en"): ("Write the number {} as a word.", "Spell the number {} as a word."),
    ("number_en", "zh"): ("用英文单词写出数字{}。", "数字{}用英文单词怎么写？"),
}
GREET_KEY = "general:greetings"  # split_of(GREET_KEY) == "train" (tests check it)


def _members(category: str, lang: str) -> list[str]:
    return [en if lang == "en" else zh for en, zh, cat in WORDS if cat == category]


def normalize(text: str) -> str:
    """An answer compared leniently: trimmed, quotes and final punctuation dropped, lower case for Latin letters."""
    s = str(text).strip().strip("\"'“”‘’「」").strip()
    s = re.sub(r"[.。!！]+$", "", s).strip()
    return s.lower()


def split_list(text: str) -> list[str]:
    """The elements of a written list: `a, b and c`, `a、b和c`, `a b c` (spaces only when there is nothing else)."""
    s = normalize(text)
    parts = re.split(r"\s*(?:,|、|，|;|；|\band\b|和)\s*", s)
    if len(parts) == 1:
        parts = s.split()
    return [p.strip() for p in parts if p.strip()]


def check_general(pred: str | None, meta: dict[str, Any]) -> bool:
    """Whether `pred` is an acceptable answer by the rule the item's `meta` carries (see the module docstring)."""
    if pred is None:
        return False
    if "accept" in meta:
        return normalize(pred) in {normalize(a) for a in meta["accept"]}
    items = split_list(pred)
    if "sequence" in meta:
        return items == [normalize(x) for x in meta["sequence"]]
    members = {normalize(m) for m in meta["members"]}
    return len(items) == meta["count"] and len(set(items)) == len(items) and set(items) <= members


class General(Task):
    name = "general"
    description = "short instructions that need no reasoning: formatting, naming, translating a word, lists, greetings"
    knobs = "level = kind of request: format, name, translate, list, greet"
    levels = ("format", "name", "translate", "list", "greet")
    default_level = "translate"
    lang = "en"
    reasoning = False

    def make(self, rng: random.Random, level: str) -> Item:
        lang = self.lang
        made = getattr(self, f"_{level}")(rng, lang)
        made.setdefault("steps", [])
        made["meta"] = {"lang": lang, "family": "general", **made.get("meta", {})}
        return made

    def _format(self, rng: random.Random, lang: str) -> Item:
        kind = rng.choice(["upper", "lower", "number", "number_en"])
        word = rng.choice(WORDS)[0]
        if kind in ("upper", "lower"):
            source, answer = (word, word.upper()) if kind == "upper" else (word.upper(), word)
            q = rng.choice(FORMAT_PHRASINGS[kind, lang]).format(source)
            return {"question": q, "answer": answer, "meta": {"accept": [answer]}}
        n = rng.randrange(len(NUMBERS_EN))
        kind = "number" if kind == "number" and lang == "zh" else "number_en"  # in English, a number has one form
        answer = NUMBERS_ZH[n] if kind == "number" else NUMBERS_EN[n]
        q = rng.choice(FORMAT_PHRASINGS[kind, lang]).format(n)
        return {"question": q, "answer": answer, "meta": {"accept": [answer]}}

    def _name(self, rng: random.Random, lang: str) -> Item:
        category = rng.choice(sorted(CATEGORIES))
        one, _, zh = CATEGORIES[category]
        members = _members(category, lang)
        if lang == "zh":  # the category first, then a comma (see `_zh_boundary`)
            q = rng.choice([f"{zh}，说出一种。", f"{zh}，请随便说一个。"])
        else:
            article = "an" if one[0] in "aeiou" else "a"
            q = rng.choice([f"Name {article} {one}.", f"Give me the name of {article} {one}."])
        return {"question": q, "answer": members[0], "meta": {"accept": members}}

    def _translate(self, rng: random.Random, lang: str) -> Item:
        en, zh, _ = rng.choice(WORDS)
        to_zh = rng.random() < 0.5
        if lang == "zh":
            q = (
                rng.choice([f"把 {en} 翻译成中文。", f"{en} 的中文是什么？"])
                if to_zh
                else rng.choice([f"把“{zh}”翻译成英文。", f"“{zh}”用英文怎么说？"])
            )
        else:
            q = (
                rng.choice([f"Translate {en} into Chinese.", f"What is {en} in Chinese?"])
                if to_zh
                else rng.choice([f"Translate {zh} into English.", f"What is the English word for {zh}?"])
            )
        answer = zh if to_zh else en
        return {"question": q, "answer": answer, "meta": {"accept": [answer]}}

    def _list(self, rng: random.Random, lang: str) -> Item:
        sep = LIST_SEP[lang]
        if rng.random() < 0.5:
            a = rng.randint(0, 15)
            b = a + rng.randint(2, 5)
            seq = [str(v) for v in range(a, b + 1)]
            q = f"列出从{a}到{b}的整数。" if lang == "zh" else f"List the numbers from {a} to {b}."
            return {"question": q, "answer": sep.join(seq), "meta": {"sequence": seq}}
        category = rng.choice(sorted(CATEGORIES))
        _, many, zh = CATEGORIES[category]
        count = rng.choice([2, 3, 4])
        members = _members(category, lang)
        q = f"{zh}，列出{COUNT_ZH[count]}种。" if lang == "zh" else f"List {COUNT_EN[count]} {many}."
        return {"question": q, "answer": sep.join(members[:count]), "meta": {"members": members, "count": count}}

    def _greet(self, rng: random.Random, lang: str) -> Item:
        prompt, reply = rng.choice([(p, r) for g, p, r in GREETINGS if g == lang])
        return {"question": prompt, "answer": reply, "meta": {"accept": [reply]}}

    def key(self, item: Item) -> str:
        if (item.get("meta") or {}).get("difficulty") == "greet":
            return GREET_KEY
        return super().key(item)

    def verify(self, pred: str, item: Item) -> bool:
        return check_general(pred, item.get("meta") or {})

    def answer_variant(self, item: Item, rng: random.Random) -> str:
        """One good answer, drawn: any category member or any choice of list members, in any order."""
        meta = item.get("meta") or {}
        if "members" in meta:
            chosen = rng.sample(list(meta["members"]), int(meta["count"]))
            return LIST_SEP[meta.get("lang", "en")].join(chosen)
        if "accept" in meta and len(meta["accept"]) > 1:
            return str(rng.choice(meta["accept"]))
        return str(item["answer"])

    def solution(self, item: Item, style: str = "direct", answer_format: str = "tags", seed: int = 0, **_: Any) -> str:
        """Always a direct answer (trivial requests get no chain of thought); `seed` picks among good answers."""
        rng = random.Random(f"general|{self.key(item)}|{seed}")
        lang = (item.get("meta") or {}).get("lang", "en")
        return finish("", self.answer_variant(item, rng), lang, answer_format)


class GeneralZh(General):
    name = "general_zh"
    description = "the non-reasoning requests in Chinese (meta.lang='zh')"
    lang = "zh"
