"""A few Prometheus counters and summaries, rendered as text: too little to need a library."""

from __future__ import annotations

from collections import defaultdict


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._help: dict[str, tuple[str, str]] = {}

    def inc(self, name: str, help_text: str, amount: float = 1.0, **labels: str) -> None:
        self._help.setdefault(name, ("counter", help_text))
        self._counters[(name, tuple(sorted(labels.items())))] += amount

    def observe(self, name: str, help_text: str, seconds: float) -> None:
        self._help.setdefault(name, ("summary", help_text))
        self._counters[(name + "_sum", ())] += seconds
        self._counters[(name + "_count", ())] += 1

    def render(self, gauges: dict[str, tuple[str, float]] | None = None) -> str:
        lines: list[str] = []
        for name, (kind, help_text) in sorted(self._help.items()):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for (series, labels), value in sorted(self._counters.items()):
                if series == name or (kind == "summary" and series in (name + "_sum", name + "_count")):
                    label_text = ",".join(f'{k}="{v}"' for k, v in labels)
                    lines.append(f"{series}{{{label_text}}} {value:g}" if labels else f"{series} {value:g}")
        for name, (help_text, value) in sorted((gauges or {}).items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
