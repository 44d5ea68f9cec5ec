"""The client, the schemas and the CLI's client commands import none of the server's heavy libraries.

Each check runs in a fresh interpreter where importing torch, spaCy, BookNLP or transformers raises (as on a
laptop with only httpx, pydantic and tqdm), and then asserts that none of them is in ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ("torch", "spacy", "booknlp", "transformers")
ROOT = Path(__file__).resolve().parents[1]

_PRELUDE = f"""
import importlib.abc, sys
HEAVY = {HEAVY!r}

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Absent())
"""

_EPILOGUE = """
loaded = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)
assert not loaded, loaded
print("light")
"""


def _run_light(body: str) -> subprocess.CompletedProcess[str]:
    code = _PRELUDE + textwrap.dedent(body) + _EPILOGUE
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("light"), done.stderr[-3000:]
    return done


def test_the_client_and_every_schema_it_returns_import_without_the_heavy_libraries() -> None:
    _run_light("""
        from booknlp_api.client import (AnalysisResult, AsyncClient, BatchPublic, Client, JobPublic, JobsPublic,
                                        NotFound)
        from booknlp_api.api.schemas import AnalyzeRequest, InfoPublic, ReadyPublic
        from booknlp_api.api.job_schemas import JobCreate
        AnalyzeRequest(text="Emma smiled.", pipeline=["entity", "quote"], precision="fast", book_id="emma")
        Client("http://127.0.0.1:1").close()
    """)


def test_the_cli_help_and_jobs_list_import_without_the_heavy_libraries() -> None:
    # jobs list against a stand-in service (stdlib http.server) answering an empty page of jobs.
    done = _run_light("""
        import contextlib, io, json, threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        class Jobs(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"jobs": [], "total": 0, "limit": 20, "offset": 0}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        http = HTTPServer(("127.0.0.1", 0), Jobs)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        from booknlp_api.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["--help"])
        status = main(["jobs", "list", "--server", f"http://127.0.0.1:{http.server_port}", "--key", "k"])
        http.shutdown()
        assert status == 0, status
        print("jobs listed")
    """)
    assert "jobs listed" in done.stdout
