"""The end-to-end benchmark's outputs: a Markdown table and a latency-throughput chart."""

from __future__ import annotations

from pathlib import Path

STAGES = ("ingest", "streams", "sink")


def markdown(steps: list[dict], half: dict | None = None, label: str = "half of highest") -> str:
    head = (
        "| offered deliv/s | accepted deliv/s | items/s | answer p50 / p99 ms "
        "| queryable p50 / p95 / p99 s | CPU s per 1k items (ingest / streams / sink) "
        "| peak RSS MB (ingest / streams / sink) | lag at end | sustainable |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    rows = [*steps, *([{**half, "label": label}] if half else [])]
    return head + "".join(_row(s) for s in rows)


def _row(s: dict) -> str:
    cpu = " / ".join(f"{s.get(f'cpu_s_per_1000_items_{n}', 0):.2f}" for n in STAGES)
    rss = " / ".join(f"{s.get(f'peak_rss_mb_{n}', 0):.0f}" for n in STAGES)
    offered = f"{s['offered_deliveries_per_s']:,.0f}"
    if "label" in s:
        offered += f" ({s['label']})"
    return (
        f"| {offered} | {s['accepted_deliveries_per_s']:,.0f} | {s['items_per_s']:,.0f} "
        f"| {s['answer_p50_ms']:.1f} / {s['answer_p99_ms']:.1f} "
        f"| {s['queryable_p50_s']:.2f} / {s['queryable_p95_s']:.2f} / {s['queryable_p99_s']:.2f} "
        f"| {cpu} | {rss} | {s['lag_at_end']:,.0f} | {'yes' if s['sustainable'] else 'no'} |\n"
    )


def chart(steps: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a build machine
    import matplotlib.pyplot as plt

    x = [s["items_per_s"] for s in steps]
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, label in (
        ("queryable_p50_s", "POST to queryable p50"),
        ("queryable_p95_s", "POST to queryable p95"),
        ("queryable_p99_s", "POST to queryable p99"),
        ("answer_p99_ms", "answer p99"),
    ):
        scale = 1 / 1000 if key.endswith("_ms") else 1
        ax.plot(x, [s[key] * scale for s in steps], marker="o", label=label)
    for s in steps:
        if not s["sustainable"]:
            ax.axvspan(s["items_per_s"] * 0.98, s["items_per_s"] * 1.02, color="red", alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("accepted items per second (end to end, one 2-core machine)")
    ax.set_ylabel("seconds")
    ax.set_title("waflow: latency against throughput (red: not sustainable)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
