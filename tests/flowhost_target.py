"""What the flow host's test has a forked process run in place of `prefect.engine` (tests/test_flowhost.py)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "report":
        print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "pid": os.getpid(), "ppid": os.getppid(),
                          "sid": os.getsid(0), "marker": os.environ.get("FLOWHOST_MARKER")}), flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "sleep":
        Path(sys.argv[2]).write_text(str(os.getpid()))
        time.sleep(120)
