"""Run one notebook top to bottom in a fresh kernel of this interpreter; print its outputs as JSON.

``python tests/notebook_runner.py NOTEBOOK``: every code cell in order, stopping at the first error. The last
stdout line is ``{"cells": [text of each code cell's outputs], "error": null or the error, "wall_s": s}``.
Used by ``test_notebooks_from_wheel.py`` to run a notebook with an installed package where no checkout is
importable.
"""
import json
import sys
import time

import nbformat
from jupyter_client.manager import start_new_kernel


def _text(msg) -> str:
    content = msg["content"]
    if msg["msg_type"] == "stream":
        return content["text"]
    if msg["msg_type"] in ("display_data", "execute_result"):
        data = content["data"]
        return data.get("text/markdown") or data.get("text/plain", "")
    return ""


def run(path: str, timeout: float = 600) -> dict:
    nb = nbformat.read(path, as_version=4)
    manager, client = start_new_kernel(kernel_name="python3")
    start, outputs, error = time.perf_counter(), [], None
    try:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            msg_id = client.execute(cell.source)
            texts = []
            while True:
                msg = client.get_iopub_msg(timeout=timeout)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "error":
                    error = "\n".join(msg["content"]["traceback"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
                texts.append(_text(msg))
            outputs.append("".join(texts))
            if error:
                break
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return {"cells": outputs, "error": error, "wall_s": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1])))
