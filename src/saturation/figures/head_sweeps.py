"""What the head-sweep figures (Fig. 6, 8, 9) share: the heads table's chosen rows, one series
per swept checkpoint (`run@step`), its colour, and the line style of each init."""

from __future__ import annotations

import pandas as pd
import seaborn as sns

INIT_STYLES = {"normal": "o-", "scaled": "s--"}


def with_series(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with a `series` column naming each one's checkpoint: `run@step`."""
    return rows.assign(series=rows["run"].astype(str) + "@" + rows["step"].astype(int).astype(str))


def chosen(table: pd.DataFrame) -> pd.DataFrame:
    """The heads each (checkpoint, head, rank, init) kept (its chosen learning rate) and the own
    heads, with their `series`."""
    if table.empty:
        raise ValueError("the heads table is empty: no run is swept (heads.enabled, heads.widths)")
    return with_series(table[table["chosen"].astype(bool)])


def best_of_inits(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (series, head, rank): the chosen head of the init with the lowest select-half loss,
    the rank-r head a figure shows when it shows one."""
    keys = ["series", "head", "rank"]
    return rows.sort_values([*keys, "select_loss"]).drop_duplicates(keys).reset_index(drop=True)


def series_palette(rows: pd.DataFrame) -> dict[str, tuple]:
    """One colour per swept checkpoint, ordered by width then name."""
    order = rows.sort_values(["width", "series"])["series"].drop_duplicates().tolist()
    return dict(zip(order, sns.color_palette("viridis_r", n_colors=len(order)), strict=True))
