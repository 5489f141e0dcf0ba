"""`r1 chat --model DIR`: talk to a model in the terminal, reasoning shown apart from the answer.

Interactive by default (`/reset` clears the history, `/exit` or Ctrl-D leaves, Ctrl-C stops the current answer);
`-p PROMPT` answers one prompt and exits. Tokens are printed as they are decoded. On a terminal the reasoning is
dimmed under a "thinking" header; when stdout is a pipe or file it is written as plain `[reasoning]` and `[answer]`
sections, so transcripts stay readable. History keeps only the answers: R1's template drops earlier reasoning, and
the DeepSeek guide says not to feed it back.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TextIO

from r1.cli import add_command, check_at_least
from r1.dtypes import DTYPE_CHOICES, DTYPE_HELP
from r1.engine.reasoning import ReasoningStream, prompt_opens_think
from r1.engine.requests import Event, SampleDone, TokenEvent
from r1.engine.sampling import SamplingParams
from r1.errors import UserError
from r1.readers import check_text, unicode_problem
from r1.tokenizer import Tokenizer

DIM, RESET, BOLD = "\033[2m", "\033[0m", "\033[1m"
HELP = "commands: /reset (forget the conversation), /exit (leave); Ctrl-C stops an answer, Ctrl-D leaves"


class ChatEngine(Protocol):
    """What a chat needs from the engine (tests pass a scripted stand-in)."""

    tokenizer: Tokenizer

    def stream(self, prompt: Any, params: SamplingParams | None = None) -> Iterator[Event]: ...


class Printer:
    """Writes reasoning and answer pieces as they come, with a header before each section."""

    def __init__(self, out: TextIO, color: bool, show_reasoning: bool = True) -> None:
        self.out, self.color, self.show_reasoning = out, color, show_reasoning
        self.section: str | None = None

    def write(self, reasoning: str, answer: str) -> None:
        if reasoning and self.show_reasoning:
            self._enter("reasoning")
            self.out.write(f"{DIM}{reasoning}{RESET}" if self.color else reasoning)
        if answer:
            self._enter("answer")
            self.out.write(answer)
        self.out.flush()

    def end(self, finish_reason: str) -> None:
        if self.section != "answer":
            self._enter("answer")  # a cut-off reasoning still gets an (empty) answer section in transcripts
        note = {"length": "[stopped: max tokens reached]", "cancelled": "[interrupted]"}.get(finish_reason)
        self.out.write("\n" + (f"{note}\n" if note else ""))
        self.out.flush()

    def _enter(self, section: str) -> None:
        if section == self.section:
            return
        if self.section is not None:
            self.out.write("\n\n" if self.color else "\n")
        if self.color:
            self.out.write(f"{DIM}{BOLD}thinking…{RESET}\n" if section == "reasoning" else "")
        else:
            self.out.write(f"[{section}]\n")
        self.section = section


class ChatSession:
    """A conversation: the message history, the sampling parameters, and where the text goes."""

    def __init__(
        self,
        engine: ChatEngine,
        params: SamplingParams,
        out: TextIO = sys.stdout,
        color: bool = False,
        system: str | None = None,
        show_reasoning: bool = True,
    ) -> None:
        self.engine, self.params, self.out, self.color = engine, params, out, color
        self.system, self.show_reasoning = system, show_reasoning
        self.messages: list[dict[str, str]] = []
        self.turns = 0
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def turn(self, user_text: str) -> tuple[str, str]:
        """Answer one user message, streaming it out; returns (reasoning, answer) and extends the history."""
        messages: Sequence[Mapping[str, str]] = [*self.messages, {"role": "user", "content": user_text}]
        in_think = prompt_opens_think(self.engine.tokenizer.apply_chat_template(messages))
        params = self.params if self.params.seed is None else self.params.with_(seed=self.params.seed + self.turns)
        split, printer = ReasoningStream(in_think), Printer(self.out, self.color, self.show_reasoning)
        reasoning, answer, finish = "", "", "stop"
        events = self.engine.stream(messages, params)
        try:
            for ev in events:
                if isinstance(ev, TokenEvent | SampleDone):
                    r, a = split.feed(ev.text)
                    if isinstance(ev, SampleDone):
                        fr, fa = split.finish()
                        r, a, finish = r + fr, a + fa, ev.sample.finish_reason
                    printer.write(r, a)
                    reasoning, answer = reasoning + r, answer + a
        except KeyboardInterrupt:
            finish = "cancelled"
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # cancels the request if it is still running
        printer.end(finish)
        self.turns += 1
        if finish != "cancelled":  # an interrupted turn is forgotten, question included
            self.messages = [*messages, {"role": "assistant", "content": answer}]
        return reasoning, answer

    def repl(self, input_fn: Callable[[str], str] = input) -> int:
        """Read-answer loop until /exit or end of input."""
        prompt = f"{BOLD}>>> {RESET}" if self.color else ">>> "
        while True:
            try:
                line = input_fn(prompt)
            except EOFError:
                self.out.write("\n")
                return 0
            except KeyboardInterrupt:
                self.out.write("\n")
                continue
            except UnicodeDecodeError as exc:  # the terminal sent bytes that are not UTF-8
                self.out.write(
                    f"error: that line is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); type it again\n"
                )
                continue
            problem = unicode_problem(line, from_bytes=True)  # stdin decoded with surrogateescape (C locale)
            if problem is not None:
                self.out.write(f"error: that line is {problem}; type it again\n")
                continue
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                return 0
            if text == "/reset":
                self.reset()
                self.out.write("[history cleared]\n")
                continue
            if text.startswith("/") and " " not in text:
                self.out.write(f"unknown command {text}; {HELP}\n")
                continue
            try:
                self.turn(line)
            except UserError as exc:  # e.g. the conversation outgrew the context: say so, keep the session
                self.out.write(f"error: {exc} (try /reset)\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `r1 chat`."""
    p = add_command(subparsers, "chat", f"Chat with a model. Interactive unless -p is given; {HELP}.")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory (weights + tokenizer files)")
    p.add_argument("-p", "--prompt", help="answer this one prompt and exit")
    p.add_argument("--system", help="system prompt (R1's advice: none; put instructions in the user turn)")
    p.add_argument("--temperature", type=float, default=0.6, help="default 0.6 (R1's recommendation)")
    p.add_argument("--top-p", type=float, default=0.95, help="default 0.95")
    p.add_argument("--top-k", type=int, default=0, help="0 = off (default)")
    p.add_argument("--max-tokens", type=int, default=2048, help="tokens per answer, reasoning included (2048)")
    p.add_argument("--seed", type=int, help="make answers reproducible (turn i uses seed + i)")
    p.add_argument("--max-len", type=int, help="context length in tokens (default: the model's, at most 4096)")
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help=DTYPE_HELP)
    p.add_argument("--hide-reasoning", action="store_true", help="print only the answers")
    from r1.serve.cli import add_speculative_args

    add_speculative_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, input_fn: Callable[[str], str] = input, out: TextIO | None = None) -> int:
    from r1.engine.engine import Engine

    out = out or sys.stdout
    check_args(args)
    params = SamplingParams(
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, max_tokens=args.max_tokens, seed=args.seed
    )
    engine = Engine.from_pretrained(
        args.model, dtype=args.dtype, max_batch=1, max_len=args.max_len, speculative=args.speculative,
        num_speculative_tokens=args.num_speculative_tokens,
    )  # fmt: skip
    color = _is_tty(out)
    session = ChatSession(engine, params, out, color, args.system, not args.hide_reasoning)
    if args.prompt is not None:
        session.turn(args.prompt)
        return 0
    out.write(f"r1 chat with {args.model}; {HELP}\n")
    return session.repl(input_fn)


def check_args(args: argparse.Namespace) -> None:
    """Numbers in range and text encodable, before the model is loaded."""
    check_at_least(args, max_tokens=1, max_len=2, top_k=0, temperature=0)
    if not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    for flag, text in (("-p/--prompt", args.prompt), ("--system", args.system)):
        if text is not None:
            check_text(text, flag, from_bytes=True)


def _is_tty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
