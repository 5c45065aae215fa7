"""A batch's results: one `Result` per file, the `Summary` line the CLI prints and the JSON
report it writes (`--report`), and `is_report`, which tells a report of this suite from any
other file (a rerun may replace the one, never the other)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..io.atomic import write_atomic


@dataclass
class Result:
    src: str
    dst: str
    status: str  # done | skipped | failed | interrupted
    reason: str = ""
    seconds: float = 0.0
    megapixels: float = 0.0


@dataclass
class Summary:
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def done(self) -> int:
        return self.count("done")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(r.src, r.reason) for r in self.results if r.status == "failed"]

    @property
    def megapixels(self) -> float:
        return sum(r.megapixels for r in self.results if r.status == "done")

    def line(self) -> str:
        rate = ""
        if self.seconds and self.done:
            rate = f", {self.done / self.seconds:.2f} img/s, {self.megapixels / self.seconds:.3f} MP/s"
        left = f", {self.count('interrupted')} not started (interrupted; rerun to finish)" if self.interrupted else ""
        return (f"done: {self.done} written, {self.skipped} skipped (output exists, or is itself an output), "
                f"{len(self.failed)} failed"
                f"{left} in {self.seconds:.1f} s{rate}")

    def write_report(self, path: Path) -> None:
        data = {"vitrestore_report": REPORT_VERSION, "summary": {"done": self.done, "skipped": self.skipped, "failed": len(self.failed),
                            "interrupted": self.count("interrupted"), "seconds": round(self.seconds, 3)},
                "files": [asdict(r) for r in self.results]}
        write_atomic(path, json.dumps(data, indent=1))  # a full disk leaves the old report, no partial file


REPORT_VERSION = 1


def is_report(path: Path) -> bool:
    """Whether `path` holds a report this suite wrote (JSON with its marker, or the summary and
    files of reports written before the marker), so a rerun may replace it."""
    try:
        if path.stat().st_size > 256 << 20:
            return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("vitrestore_report") == REPORT_VERSION
                                       or (set(data) == {"summary", "files"} and isinstance(data["files"], list)))
