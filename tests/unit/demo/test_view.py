"""The demo's terminal view: fixed states in, exact frames out (no terminal needed)."""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path

import pytest

from export.data.datasets import load_dataset
from workers.demo.queries import QuerySample
from workers.demo.view import (
    ELLIPSIS,
    SampleRow,
    TerminalView,
    ViewState,
    cell_width,
    fit,
    format_bucket,
    render_log_line,
    render_screen,
    render_table,
    shorten_path,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@functools.cache
def _rows(data_dir: Path) -> list[tuple[str, tuple[str, ...]]]:
    """Real titles and labels: 20 English (bigbasket) and 20 Chinese products."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for name in ("bigbasket", "cn_ecommerce_products"):
        examples, _ = load_dataset(name, data_dir, limit=20)
        out += [(e.title, e.path) for e in examples]
    return out


@pytest.fixture
def real_rows(data_dir: Path) -> list[tuple[str, tuple[str, ...]]]:
    return _rows(data_dir)


def _samples(rows: list[tuple[str, tuple[str, ...]]]) -> tuple[SampleRow, ...]:
    sources = ("model", "cache", "override")
    return tuple(
        SampleRow(
            source=sources[i % 3],
            confidence=(i % 10) / 10,
            title=title,
            path=path,
            needs_review=i % 4 == 0,
            agrees=None if i % 3 == 2 else i % 2 == 0,
        )
        for i, (title, path) in enumerate(rows)
    )


def _state(samples: tuple[SampleRow, ...], **changes: object) -> ViewState:
    base: dict[str, object] = {
        "run_id": "0a1b2c3d",
        "phase": "1/3 new products, English + Chinese, at 300/s",
        "elapsed_s": 12.34,
        "target_rate": 300.0,
        "sent": 3600,
        "received": 3588,
        "rate_in": 298.5,
        "rate_out": 296.25,
        "lag_total": 12,
        "lag_by_topic": (("product.created", (3, 0, 5, 0, 4, 0)), ("product.updated", (0,) * 6)),
        "p50_ms": 41.25,
        "p99_ms": 133.0,
        "run_p99_ms": 948.0,
        "worker_p99_bucket": (0.5, 1.0),
        "cache_hit_ratio": 0.168,
        "sources": (("cache", 81), ("model", 3500), ("override", 3)),
        "review_ratio": 0.25,
        "agreement": 0.765,
        "exact_agreement": 0.652,
        "judged": 3581,
        "samples": samples,
        "notes": (),
    }
    base.update(changes)
    return ViewState(**base)  # type: ignore[arg-type]


def test_cell_width_counts_chinese_as_two_cells() -> None:
    assert cell_width("Rosemary") == 8
    assert cell_width("三星手机") == 8
    assert cell_width("三星 GALAXY") == 11
    assert cell_width("é") == 1  # e + combining acute accent


@pytest.mark.parametrize("width", [8, 13, 24, 41, 60])
def test_fit_gives_exact_cell_widths_for_real_titles(
    real_rows: list[tuple[str, tuple[str, ...]]], width: int
) -> None:
    for title, _ in real_rows:
        cut = fit(title, width)
        assert cell_width(cut) == width, (title, cut)
        clean = " ".join(title.splitlines())
        if cell_width(clean) <= width:
            assert cut.rstrip() == clean.rstrip()
        else:
            assert cut.rstrip().endswith(ELLIPSIS)
            assert clean.startswith(cut.rstrip()[:-1])


def test_fit_pads_when_a_wide_character_does_not_fit() -> None:
    # 5 cells available, "中文字" is 6: two characters (4 cells) + ellipsis (1 cell)
    assert fit("中文字", 5) == "中文" + ELLIPSIS
    assert fit("中文字", 4) == "中" + ELLIPSIS + " "


def test_shorten_path_keeps_root_and_leaf(real_rows: list[tuple[str, tuple[str, ...]]]) -> None:
    deep = [p for _, p in real_rows if len(p) >= 3]
    assert deep, "the catalogs have three-level paths"
    for path in deep:
        full = " > ".join(path)
        assert shorten_path(path, 200) == full
        short = shorten_path(path, cell_width(full) - 1)
        assert short.startswith(path[0]) or short.endswith(ELLIPSIS)
        assert cell_width(short) < cell_width(full)
        roomy = shorten_path(path, cell_width(f"{path[0]} > {ELLIPSIS} > {path[-1]}"))
        assert roomy == f"{path[0]} > {ELLIPSIS} > {path[-1]}"


@pytest.mark.parametrize(("width", "height"), [(120, 40), (80, 24), (200, 60)])
def test_frame_fits_the_terminal(
    real_rows: list[tuple[str, tuple[str, ...]]], width: int, height: int
) -> None:
    state = _state(_samples(real_rows), notes=("prodcat feedback is not implemented yet",))
    lines = render_screen(state, width, height, color=True)
    assert len(lines) <= height
    for line in lines:
        assert cell_width(ANSI.sub("", line)) <= width, line


def test_frame_shows_the_figures_and_the_newest_products_last(
    real_rows: list[tuple[str, tuple[str, ...]]],
) -> None:
    samples = _samples(real_rows)
    lines = render_screen(_state(samples), 120, 30, color=False)
    text = "\n".join(lines)
    assert not ANSI.search(text)
    assert "in   298.5 (target 300)" in text
    assert "out   296.2" in text
    assert "lag        12 msgs" in text
    assert "product.created [3 0 5 0 4 0]" in text
    assert "newest 2,000: p50 41.2 ms  p99 133.0 ms   (occurred_at → output)" in text
    assert "whole run: p99 948.0 ms   worker histogram p99 in 500 ms–1 s" in text
    assert "hit ratio 16.8%" in text
    assert "cache 81 · model 3,500 · override 3" in text
    assert "catalog label, 3,581 distinct products:" in text
    assert "exact leaf 65.2% · on its path as far as answered 76.5%" in text
    last = samples[-1]
    assert lines[-1].startswith(f"{last.source:8s} {last.confidence:4.2f}  ")
    assert fit(last.title, 20).rstrip(ELLIPSIS + " ") in lines[-1]
    shown = [ln for ln in lines if re.match(r"(model|cache|override)\s+\d\.\d\d  ", ln)]
    assert len(lines) == 30
    assert lines[-len(shown) - 1].startswith("source   conf  product")
    assert any(ln.startswith("override") for ln in shown)
    newest = samples[-len(shown) :]
    assert [("review" in ln) for ln in shown] == [s.needs_review for s in newest]


def test_override_and_cache_rows_are_coloured(
    real_rows: list[tuple[str, tuple[str, ...]]],
) -> None:
    lines = render_screen(_state(_samples(real_rows)), 120, 60, color=True)

    def rows_of(source: str) -> list[str]:
        pattern = re.compile(rf"{source}\s+\d\.\d\d  ")
        return [ln for ln in lines if pattern.match(ANSI.sub("", ln))]

    override, cache = rows_of("override"), rows_of("cache")
    assert override and all(ln.startswith("\x1b[1;35m") for ln in override)
    assert cache and all(ln.startswith("\x1b[36m") for ln in cache)


def test_unknown_figures_show_a_dash() -> None:
    state = _state(
        (),
        lag_total=None,
        lag_by_topic=(),
        p50_ms=None,
        p99_ms=None,
        run_p99_ms=None,
        worker_p99_bucket=None,
        cache_hit_ratio=None,
        review_ratio=None,
        agreement=None,
        exact_agreement=None,
    )
    text = "\n".join(render_screen(state, 100, 20, color=False))
    assert "lag        –" in text
    assert "p99 –   (" in text and "whole run: p99 –   worker histogram p99 in –" in text
    assert "exact leaf – · on its path as far as answered –" in text
    assert "hit ratio –" in text
    line = render_log_line(state)
    assert "lag –" in line
    assert "p99 – (newest 2,000)" in line


def test_log_line() -> None:
    line = render_log_line(_state(()))
    assert line == (
        "[demo   12.3s] 1/3 new products, English + Chinese, at 300/s: sent 3600 "
        "categorized 3588  in 298/s out 296/s  lag 12  p99 133 ms (newest 2,000)  cache hits 16.8%"
    )


def test_table_lines_align_with_chinese_values(
    real_rows: list[tuple[str, tuple[str, ...]]],
) -> None:
    rows = [("bundle", "demo-bigbasket-cn_ecommerce_products-20000")]
    rows += [(f"product {i}", title) for i, (title, _) in enumerate(real_rows[-5:])]
    table = render_table("prodcat demo: summary", rows)
    widths = {cell_width(line) for line in table}
    assert len(widths) == 1
    assert len(table) == len(rows) + 4
    assert real_rows[-1][0].split()[0] in table[-2]


def test_writer_without_a_terminal_logs_at_most_every_interval(
    real_rows: list[tuple[str, tuple[str, ...]]],
) -> None:
    out = io.StringIO()
    view = TerminalView(out, interactive=False, log_every_s=3600)
    state = _state(_samples(real_rows), notes=("the demo writes overrides itself",))
    view.update(state)
    view.update(state)  # within the interval: nothing
    view.update(state, force=True)
    view.close()
    lines = out.getvalue().splitlines()
    assert lines.count("note: the demo writes overrides itself") == 1
    assert sum(ln.startswith("[demo") for ln in lines) == 2
    assert not ANSI.search(out.getvalue())


def test_writer_on_a_terminal_redraws_in_place(
    real_rows: list[tuple[str, tuple[str, ...]]],
) -> None:
    out = io.StringIO()
    view = TerminalView(out, interactive=True)
    view.update(_state(_samples(real_rows)))
    view.update(_state(_samples(real_rows)))
    view.close()
    text = out.getvalue()
    assert text.startswith("\x1b[?25l\x1b[2J\x1b[H")  # hide cursor, clear once, home
    assert text.count("\x1b[2J") == 1
    assert text.count("\x1b[H") == 2
    assert text.endswith("\x1b[?25h")  # the cursor comes back


@pytest.mark.parametrize(("width", "height"), [(120, 40), (80, 24)])
def test_search_queries_are_shown_under_the_figures_and_fit(
    real_rows: list[tuple[str, tuple[str, ...]]], width: int, height: int
) -> None:
    queries = tuple(
        QuerySample(title.lower()[:20], path, 0.5 + i / 20, i % 4, i % 2 == 0)
        for i, (title, path) in enumerate(real_rows[:4])
    )
    lines = render_screen(_state(_samples(real_rows), queries=queries), width, height)
    plain = [ANSI.sub("", line) for line in lines]
    at = next(i for i, line in enumerate(plain) if line.startswith("search query"))
    assert at < next(i for i, line in enumerate(plain) if " product (" in line)
    shown = plain[at + 1 : at + 5]
    for line, q in zip(shown, queries, strict=True):
        assert line.startswith(q.query[:8]), (line, q.query)
    assert [line.rstrip().endswith("✓") for line in shown] == [True, False, True, False]
    assert len(lines) <= height
    for line in plain:
        assert cell_width(line) <= width, line
    assert not any(
        line.startswith("search query") for line in render_screen(_state(()), width, height)
    )


def test_bucket_text() -> None:
    assert format_bucket((0.1, 0.25)) == "100–250 ms"
    assert format_bucket((0.5, 1.0)) == "500 ms–1 s"
    assert format_bucket((1.0, 2.5)) == "1–2.5 s"
    assert format_bucket((60.0, float("inf"))) == "over 60 s"
    assert format_bucket(None) == "–"


def test_table_wraps_to_80_columns(real_rows: list[tuple[str, tuple[str, ...]]]) -> None:
    long_value = " · ".join(title for title, _ in real_rows[-3:])  # Chinese, no spaces inside
    rows = [("a label that is rather long for a table", long_value), ("short", "x")]
    table = render_table("prodcat demo: summary", rows, 80)
    assert {cell_width(line) for line in table} == {80}
    assert len(table) > len(rows) + 4  # the long value took more lines
    joined = "".join(line[line.rindex("│", 0, -1) + 1 : -1].strip() for line in table[3:-2])
    assert joined.replace(" ", "") == long_value.replace(" ", "")[: len(joined.replace(" ", ""))]
