"""Tests for the code sandbox and the `code` reward: correct programs pass, and each kind of misbehaviour a policy can
produce (infinite loop, memory bomb, fork bomb, writes outside the work directory, network, output flood) is contained,
scores 0, and leaves this process alive and fast."""

from __future__ import annotations

import os
import time

import pytest

from r1.errors import UserError
from r1.rewards import build_reward, get_reward
from r1.rewards.code import extract_code, outputs_match
from r1.rewards.sandbox import run_python

ESCAPE = "/tmp/r1_escape_test"

DOUBLE_TESTS = [{"input": "2\n", "output": "4\n"}, {"input": "21\n", "output": "42"}, {"input": "-3", "output": "-6"}]


def code_item(tests=None):
    meta = {"tests": tests or DOUBLE_TESTS}
    return {"prompt": "Double the number.", "answer": None, "task": "code_test", "meta": meta}


def completion(program: str) -> str:
    return f"<think>Read n, print 2n.</think>\n<answer>\n```python\n{program}\n```\n</answer>"


CODE = get_reward("code", timeout_s=1.0)


@pytest.fixture(autouse=True)
def no_escape_file():
    if os.path.exists(ESCAPE):
        os.remove(ESCAPE)
    yield
    assert not os.path.exists(ESCAPE), "a sandboxed program wrote outside its directory"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


# -------------------------------------------------------------------------------------------------------- run_python


class TestRunPython:
    def test_runs_and_reads_stdin(self):
        r = run_python("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))", stdin="1 2 3")
        assert r.ok and r.stdout == "6\n" and not r.blocked

    def test_exception_is_a_failure_with_stderr(self):
        r = run_python("raise ValueError('boom')")
        assert r.returncode == 1 and not r.ok and "ValueError: boom" in r.stderr

    def test_infinite_loop_is_killed(self):
        r, elapsed = timed(run_python, "while True: pass", timeout_s=1.0)
        assert r.timed_out and not r.ok and r.returncode is None
        assert elapsed < 3

    def test_sleeping_child_is_killed(self):
        r, elapsed = timed(run_python, "import time\ntime.sleep(60)", timeout_s=0.5)
        assert r.timed_out and elapsed < 3

    @pytest.mark.parametrize(
        "program",
        ["x = bytearray(10**10)", "x = []\nwhile True:\n    x.append(' ' * 10**6)", "x = 'a' * (2**40)"],
    )
    def test_memory_bombs(self, program):
        r, elapsed = timed(run_python, program, timeout_s=5.0, memory_mb=256)
        assert not r.ok and "MemoryError" in r.stderr
        assert elapsed < 5

    def test_fork_bomb_stops_at_the_first_fork(self):
        before = _children()
        r, elapsed = timed(run_python, "import os\nwhile True:\n    os.fork()")
        assert not r.ok and r.blocked and "os.fork" in r.stderr
        assert elapsed < 2
        assert _children() <= before  # nothing left behind

    @pytest.mark.parametrize(
        "program",
        [
            "import os\nos.system('echo hi')",
            "import subprocess\nsubprocess.run(['echo', 'hi'])",
            "import multiprocessing",
            "import posix\nposix.fork()",
            "import ctypes",
            "import _testcapi",
            "import _xxsubinterpreters",
            "import sys\nsys.modules.pop('_posixsubprocess', None)\nimport _posixsubprocess",
            "import os\nos.execv('/bin/echo', ['echo'])",
            "import os\nos.kill(1, 9)",
        ],
    )
    def test_process_creation_blocked(self, program):
        r = run_python(program)
        assert not r.ok and r.blocked

    @pytest.mark.parametrize(
        "program",
        [
            f"open({ESCAPE!r}, 'w').write('x')",
            f"import io\nio.FileIO({ESCAPE!r}, 'w')",
            f"import os\nos.open({ESCAPE!r}, os.O_WRONLY | os.O_CREAT)",
            f"import pathlib\npathlib.Path({ESCAPE!r}).write_text('x')",
            "import os\nos.chdir('/')\nopen('tmp/r1_escape_test', 'w')",
            "open('../../../../../../../tmp/r1_escape_test', 'w')",
            f"import os\nos.symlink({ESCAPE!r}, 'link')\nopen('link', 'w')",
            # patching what a Python-level guard would consult does not fool the audit hook
            "import os\nos.path.realpath = lambda p: p\nos.getcwd = lambda: '/a/b/c/d/e/f/g/h/i'\n"
            "open('../../../../../../../../tmp/r1_escape_test', 'w')",
        ],
    )
    def test_writes_outside_blocked(self, program):
        r = run_python(program)
        assert not r.ok and r.blocked  # and the fixture checks that the file does not exist

    def test_removing_outside_blocked(self, tmp_path):
        victim = tmp_path / "keep.txt"
        victim.write_text("precious")
        for program in [f"import os\nos.remove({str(victim)!r})", f"import shutil\nshutil.rmtree({str(tmp_path)!r})"]:
            r = run_python(program)
            assert r.blocked
        assert victim.read_text() == "precious"

    def test_writes_inside_allowed_and_cleaned_up(self):
        r = run_python("import os\nopen('a.txt', 'w').write('hi')\nprint(open('a.txt').read(), os.getcwd())")
        assert r.ok and r.stdout.startswith("hi ")
        workdir = r.stdout.split()[1]
        assert not os.path.exists(workdir)

    @pytest.mark.parametrize(
        "program",
        [
            "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)",
            "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
            "import socket\nsocket.getaddrinfo('example.com', 80)",
            "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)",
        ],
    )
    def test_network_blocked(self, program):
        r, elapsed = timed(run_python, program)
        assert not r.ok and r.blocked and elapsed < 2

    def test_output_is_capped(self):
        r, elapsed = timed(run_python, "while True:\n    print('x' * 1000)", max_output_bytes=10_000)
        assert r.truncated and len(r.stdout) <= 10_000 and not r.ok
        assert elapsed < 3

    def test_environment_is_clean(self):
        os.environ["R1_SECRET_FOR_TEST"] = "s3cret"
        try:
            r = run_python("import os\nprint(sorted(os.environ))")
        finally:
            del os.environ["R1_SECRET_FOR_TEST"]
        assert "R1_SECRET" not in r.stdout and "PATH" in r.stdout

    def test_only_stdlib(self):
        assert run_python("import json, math, collections, itertools, heapq, bisect, re").ok
        assert not run_python("import numpy").ok  # -I -S: no site-packages

    def test_unittest_and_signal_still_work(self):
        r = run_python("import signal, unittest\nsignal.alarm(5)\nprint('ok')")
        assert r.ok and r.stdout == "ok\n"

    def test_threads_still_work(self):
        r = run_python("import threading\nt = threading.Thread(target=lambda: print('t'))\nt.start()\nt.join()")
        assert r.ok and r.stdout == "t\n"

    def test_bad_limits(self):
        with pytest.raises(UserError):
            run_python("pass", timeout_s=0)
        with pytest.raises(UserError):
            run_python("pass", memory_mb=1)


def _children() -> int:
    """Number of live child processes of this test process."""
    me = str(os.getpid())
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        count += fields[1] == me and fields[0] != "Z"
    return count


# ------------------------------------------------------------------------------------------------------- code reward


class TestCodeReward:
    def test_correct_program(self):
        assert CODE(completion("print(2 * int(input()))"), code_item()) == 1.0

    def test_wrong_program(self):
        assert CODE(completion("print(int(input()) + 2)"), code_item()) == pytest.approx(1 / 3)  # 2+2 == 2*2
        assert CODE(completion("print(3 * int(input()))"), code_item()) == 0.0

    def test_all_or_nothing(self):
        f = get_reward("code", all_or_nothing=True)
        assert f(completion("print(int(input()) + 2)"), code_item()) == 0.0
        assert f(completion("print(2 * int(input()))"), code_item()) == 1.0

    def test_assert_tests(self):
        item = code_item(tests="assert double(2) == 4\nassert double(-1) == -2")
        assert CODE(completion("def double(x):\n    return 2 * x"), item) == 1.0
        assert CODE(completion("def double(x):\n    return x + 2"), item) == 0.0
        item_list = code_item(tests=["assert double(2) == 4", "assert double(-1) == -2"])
        assert CODE(completion("def double(x):\n    return x + 2"), item_list) == 0.5

    @pytest.mark.parametrize(
        "program",
        [
            "while True: pass",
            "x = bytearray(10**10)",
            "import os\nwhile True:\n    os.fork()",
            f"open({ESCAPE!r}, 'w').write('4')\nprint(4)",
            "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)\nprint(4)",
        ],
    )
    def test_misbehaving_programs_score_zero(self, program):
        item = code_item(tests=[{"input": "2", "output": "4"}])
        score, elapsed = timed(CODE, completion(program), item)
        assert score == 0.0
        assert elapsed < 4

    def test_no_code(self):
        assert CODE("<think>hm</think><answer>print(4)</answer>", code_item()) == 0.0
        assert CODE("<think>```python\nprint(2*int(input()))\n```</think><answer>none</answer>", code_item()) == 0.0

    def test_extract_code(self):
        text = "```python\nprint(1)\n```\nthen\n```cpp\nint main(){}\n```\n```py\nprint(2)\n```"
        assert extract_code(text) == "print(2)\n"
        assert extract_code("```\nprint(3)\n```") == "print(3)\n"
        assert extract_code("```bash\nls\n```") is None
        assert extract_code("no code") is None

    def test_outputs_match(self):
        assert outputs_match("1 \n2\n\n", "1\n2")
        assert outputs_match("a\r\nb", "a\nb")
        assert not outputs_match("1\n2", "1\n3")
        assert not outputs_match("12", "1\n2")

    def test_missing_tests_is_a_user_error(self):
        with pytest.raises(UserError, match="meta.tests"):
            CODE(completion("print(1)"), {"prompt": "p", "answer": None, "task": "x", "meta": {}})
        with pytest.raises(UserError, match="each test"):
            CODE(completion("print(1)"), code_item(tests=[{"in": "1"}]))

    def test_bad_options(self):
        with pytest.raises(UserError, match="timeout_s"):
            get_reward("code", timeout_s=0)
        with pytest.raises(UserError, match="workers"):
            get_reward("code", workers=0)

    def test_in_a_composite_batch(self):
        r = build_reward({"code": {"weight": 1.0, "timeout_s": 0.5}, "format": 0.5})
        good = completion("print(2 * int(input()))")
        bad = completion("while True: pass")
        batch = r.score([good, bad], [code_item(), code_item()])
        assert batch.components["code"] == [1.0, 0.0]
        assert batch.total == [1.5, 0.5]
