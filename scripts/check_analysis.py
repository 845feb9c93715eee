#!/usr/bin/env python3
"""Helpers of check_analysis.sh.

  check_analysis.py notebooks OUT_DIR NB.ipynb...   execute each notebook headless (nbclient,
                                                    the venv's python3 kernel); fail on the
                                                    first cell error; save executed copies
  check_analysis.py screenshot PNG                  fail unless the screenshot of report.html
                                                    is non-blank and shows coloured curves
"""

import os
import sys
import time


def fail(msg):
    print(f"check_analysis: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def notebooks(out_dir, paths):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    os.makedirs(out_dir, exist_ok=True)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.time()
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": out_dir}})
        try:
            client.execute()
        except CellExecutionError as e:
            fail(f"{path}: a cell failed:\n{e}")
        finally:
            nbformat.write(nb, os.path.join(out_dir, os.path.basename(path)))
        code = [c for c in nb.cells if c.cell_type == "code"]
        errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        if errors or any(c.get("execution_count") is None for c in code):
            fail(f"{path}: not every cell ran cleanly")
        images = sum(1 for c in code for o in c.get("outputs", [])
                     if "image/png" in o.get("data", {}))
        if images == 0:
            fail(f"{path}: no figure was drawn")
        print(f"check_analysis: OK: {os.path.basename(path)}: {len(code)} code cells, "
              f"{images} figure(s), {time.time() - start:.1f} s")


def screenshot(path):
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    counts = img.getcolors(w * h)  # [(count, (r, g, b))], every distinct colour
    ink = sum(n for n, (r, g, b) in counts if min(r, g, b) < 230)
    colour = sum(n for n, (r, g, b) in counts if max(r, g, b) - min(r, g, b) > 80)
    share = ink / (w * h)
    if share < 0.005:
        fail(f"{path}: the page looks blank ({ink} non-white pixels of {w}x{h})")
    if colour < 500:
        fail(f"{path}: no coloured curves rendered ({colour} coloured pixels)")
    print(f"check_analysis: OK: screenshot {w}x{h}: {share:.1%} non-white, {colour} coloured pixels")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "notebooks":
        notebooks(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "screenshot":
        screenshot(sys.argv[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
