"""The figures ``melodex demo --unlabeled`` prints: retrieval without labels beside the supervised model's.

Both come from ``melodex evaluate`` reports (JSON, see :func:`melodex.analysis.retrieval.write_report`)
of the two demo stores, which hold the same tracks.
"""

from __future__ import annotations

import json
from pathlib import Path

NAMES = {"artist": "same artist", "release_id": "same album", "genre": "same style"}


def _scores(path: Path) -> dict[tuple[str, str], dict]:
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    return {(s["label"], s["embedding"]): s for s in report.get("scores", [])}


def comparison_table(unlabeled: str | Path, supervised: str | Path | None = None) -> str:
    """One line per label: the contrastive store's agreement, the supervised store's (when its
    report is given), MFCC statistics' and chance; ``-`` where a figure is missing."""
    mine = _scores(Path(unlabeled))
    theirs = _scores(Path(supervised)) if supervised is not None else {}
    header = f"{'':<12}{'contrastive':>12}{'supervised':>12}{'mfcc-stats':>12}{'chance':>9}"
    lines = [header]
    for label, name in NAMES.items():
        own = mine.get((label, "store"))
        if own is None:
            continue
        cells = [own["agreement"], (theirs.get((label, "store")) or {}).get("agreement"),
                 (mine.get((label, "mfcc-stats")) or {}).get("agreement"), own["chance"]]
        text = [f"{v:.3f}" if isinstance(v, (int, float)) else "-" for v in cells]
        lines.append(f"{name:<12}{text[0]:>12}{text[1]:>12}{text[2]:>12}{text[3]:>9}")
    return "\n".join(lines)
