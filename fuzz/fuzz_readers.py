"""Coverage-guided fuzzing of qrate's readers with atheris (libFuzzer).

    pip install -e '.[fuzz]'
    python -m fuzz.seeds fuzz/corpus
    python fuzz/fuzz_readers.py fuzz/corpus -max_total_time=300 -rss_limit_mb=2048 -timeout=10

Any exception other than ReadError, a hang past -timeout, or memory past -rss_limit_mb is a
finding: libFuzzer writes the input as crash-*/timeout-*/oom-* in the working folder. Add it to
tests/test_fuzz.py as a regression case once fixed.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["qrate", "fuzz"]):
    from fuzz.target import exercise  # noqa: E402


def test_one_input(data: bytes) -> None:
    exercise(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
