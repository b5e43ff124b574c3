"""Release the current schemas: `python -m schemas.history` writes `schemas/history/
io.waflow.<Name>.v<N>.avsc` for each schema whose current form is not yet the newest release.

Run it when a change to a schema ships. Releases are never edited or removed: a record written
by any of them may still sit on a topic, and the codec reads it with the current schema.
"""

from __future__ import annotations

import json

from schemas.codec import HISTORY, TOP_LEVEL, history, standalone


def release() -> list[str]:
    written = []
    for name in TOP_LEVEL:
        released = history(name)
        current = standalone(name)
        if released and released[-1][1] == current:
            continue
        path = HISTORY / f"io.waflow.{name}.v{len(released) + 1}.avsc"
        path.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")
        written.append(path.name)
    return written


if __name__ == "__main__":
    for name in release():
        print(f"released {name}")
