"""Buyer personas from behaviour: customers clustered by their journeys' habits.

Input grain: one row per customer with the behaviour features of :data:`FEATURES` (from
``sql/queries/persona_features.sql``: channel mix, stages reached, conversion, time to
convert, omnichannel patterns, basket value, recency and frequency). Output grain: a
:class:`PersonaModel` (how many personas and their centres), one persona per customer
(:func:`assign_personas`) and one row per persona with a name and a description made from its
numbers (:func:`describe_personas`).

The clustering is k-means (scikit-learn) on the features scaled to [0, 1] -- each between its
minimum and its 99th percentile over all customers, clipped -- so that a share and a continuous
measure weigh alike and a few extreme customers do not squeeze everyone else together
(z-scores made the continuous, within-group spread of recency and time to convert outweigh the
behaviour that tells groups apart: on the clear-cut simulation they recovered the planted kinds
with an adjusted Rand index of 0.58, this scaling with 0.90). It is fitted on a sample of at
most ``sample`` customers drawn with the seed from the customers in key order, so that the same
data and seed give the same personas. Unless the analyst fixes ``k``, the number of personas is
the one of 2..``max_k`` with the highest silhouette score (on the same sample): the stated
criterion. Personas are numbered by size, the largest first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

# the behaviour each customer is described by, as the clustering sees it: (column, transform)
FEATURES: tuple[tuple[str, str], ...] = (
    ("journeys", "log"),  # frequency
    ("conversion_rate", "plain"),  # converted / closed journeys
    ("basket_value", "log"),  # mean revenue of a converted journey
    ("online_share", "plain"),  # share of steps in the online channels
    ("offline_share", "plain"),  # ... in the offline channels (stores, call centre)
    ("furthest_stage", "plain"),  # 0 none .. 6 loyalty
    ("days_to_convert", "log"),  # median of the converted journeys (none: the median of all)
    ("ropo_share", "plain"),  # share of journeys with each omnichannel pattern
    ("click_and_collect_share", "plain"),
    ("try_and_buy_share", "plain"),
    ("recency_days", "log"),  # days from the last journey's end to the end of the data
)
FEATURE_NAMES = tuple(name for name, _ in FEATURES)
# silhouettes are computed on at most this many of the sampled customers (its cost is
# quadratic): at 10M events, 3,000 of a 10,000 sample chose the same k as 5,000 of 20,000
# with scores within 0.01, in 1.5 s against 3.7 s for the whole fit
SILHOUETTE_SAMPLE = 3_000
# k-means runs from this many seeded starts per number of personas and keeps the best (10
# starts took 4.7 s of a 10M-event run's marts, 3 starts 3.3 s, both on 20,000 customers)
N_INIT = 3
TOP_PERCENTILE = 99  # a feature's scale ends here: the few customers beyond it are at 1


@dataclass(frozen=True)
class PersonaModel:
    """Fitted personas: the scaling (each feature's low end and range), the centres (scaled,
    persona 1 first) and the silhouette of each number of personas tried (``{k: score}``)."""

    lows: tuple[float, ...]
    ranges: tuple[float, ...]
    centres: tuple[tuple[float, ...], ...]
    silhouettes: dict[int, float]
    chosen_by: str  # "silhouette" | "config" | "too few customers"
    seed: int

    @property
    def k(self) -> int:
        return len(self.centres)


def _matrix(features: pl.DataFrame) -> np.ndarray:
    """The features as the clustering sees them: log1p of the skewed ones, nulls of
    ``days_to_convert`` (never converted) as the median of those who did."""
    days = pl.col("days_to_convert")
    columns = []
    for name, transform in FEATURES:
        column = pl.col(name).cast(pl.Float64)
        if name == "days_to_convert":
            column = column.fill_null(days.median()).fill_null(0.0)
        column = column.fill_null(0.0)
        columns.append(column.log1p() if transform == "log" else column)
    return features.select(columns).to_numpy().astype(np.float64)


def _scaled(matrix: np.ndarray, lows: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    scaled: np.ndarray = np.clip((matrix - lows) / ranges, 0.0, 1.0)
    return scaled


def _sample_rows(count: int, *, sample: int, seed: int) -> np.ndarray:
    if count <= sample:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=sample, replace=False))


def fit_personas(
    features: pl.DataFrame,
    *,
    k: int | None = None,
    max_k: int = 8,
    seed: int = 0,
    sample: int = 10_000,
) -> PersonaModel:
    """Clusters the customers of ``features`` (one row per customer, :data:`FEATURE_NAMES`
    and ``customer_key``) into personas.

    ``k`` fixes the number of personas; None picks the one of 2..``max_k`` with the highest
    silhouette (ties: the fewer). Fewer distinct customers than that make fewer personas
    (one for a single kind of customer).
    """
    ordered = features.sort("customer_key")
    matrix = _matrix(ordered)
    if len(matrix):
        lows = matrix.min(axis=0)
        ranges = np.percentile(matrix, TOP_PERCENTILE, axis=0) - lows
        ranges = np.where(ranges > 0, ranges, matrix.max(axis=0) - lows)
        ranges = np.where(ranges > 0, ranges, 1.0)  # one value: all at 0
    else:
        lows, ranges = np.zeros(len(FEATURES)), np.ones(len(FEATURES))
    fitted = _scaled(matrix, lows, ranges)[_sample_rows(len(matrix), sample=sample, seed=seed)]
    distinct = len(np.unique(fitted, axis=0)) if len(fitted) else 0
    candidates = [k] if k is not None else list(range(2, max_k + 1))
    # a silhouette needs 2 .. n - 1 clusters (n customers fitted)
    candidates = [c for c in candidates if c <= distinct and c < len(fitted)]
    if not candidates:  # one kind of customer, or none
        centre = fitted.mean(axis=0) if len(fitted) else np.zeros(len(FEATURES))
        return PersonaModel(
            tuple(float(v) for v in lows),
            tuple(float(v) for v in ranges),
            (tuple(float(v) for v in centre),),
            {},
            "too few customers",
            seed,
        )
    silhouettes: dict[int, float] = {}
    best: tuple[float, int, np.ndarray] | None = None
    for count in candidates:
        model = KMeans(n_clusters=count, n_init=N_INIT, random_state=seed).fit(fitted)
        labels = model.labels_
        score = (
            float(
                silhouette_score(
                    fitted,
                    labels,
                    sample_size=min(SILHOUETTE_SAMPLE, len(fitted)),
                    random_state=seed,
                )
            )
            if len(set(labels)) > 1
            else -1.0
        )
        silhouettes[count] = round(score, 6)
        if best is None or score > best[0]:
            best = (score, count, model.cluster_centers_)
    assert best is not None
    centres = best[2]
    # persona 1 the largest (on the sample), ties by the centre's values
    sizes = np.bincount(_nearest(fitted, centres), minlength=len(centres))
    order = sorted(range(len(centres)), key=lambda i: (-sizes[i], tuple(centres[i])))
    return PersonaModel(
        tuple(float(v) for v in lows),
        tuple(float(v) for v in ranges),
        tuple(tuple(float(v) for v in centres[i]) for i in order),
        silhouettes,
        "config" if k is not None else "silhouette",
        seed,
    )


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    distances = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    nearest: np.ndarray = distances.argmin(axis=1)
    return nearest


def assign_personas(features: pl.DataFrame, model: PersonaModel) -> pl.DataFrame:
    """Each customer's persona (1..k): the nearest centre. Columns customer_key, persona."""
    ordered = features.sort("customer_key")
    points = _scaled(_matrix(ordered), np.array(model.lows), np.array(model.ranges))
    centres = np.array(model.centres)
    labels = (
        np.concatenate(
            [_nearest(points[i : i + 100_000], centres) for i in range(0, len(points), 100_000)]
        )
        if len(points)
        else np.array([], dtype=np.int64)
    )
    return ordered.select("customer_key").with_columns(
        pl.Series("persona", labels + 1, dtype=pl.Int32)
    )


# how a persona's numbers read: (column, threshold, words) in the order they are tried
_CHANNEL_WORDS = (("online_share", 0.75, "online"), ("offline_share", 0.6, "in-store"))
_PATTERN_WORDS = (
    ("ropo_share", "online researchers who buy in store"),
    ("try_and_buy_share", "store triers who buy online"),
    ("click_and_collect_share", "click-and-collect shoppers"),
)
PATTERN_SHARE = 0.3  # a persona is named after a pattern in at least this share of its journeys
BROWSER_RATE = 0.2  # ... "browsers" when fewer of its closed journeys convert
HIGH_BASKET = 1.25  # ... "high-basket" at this multiple of the average basket of all buyers
REPEAT = 1.5  # ... "repeat" at this multiple of the average journeys of all customers


def persona_name(persona: dict[str, float], overall: dict[str, float]) -> str:
    """A readable name from a persona's averages (``persona``) against all customers'
    (``overall``), by the stated thresholds above.

    Example:
        >>> persona_name({"online_share": 0.9, "offline_share": 0.1, "conversion_rate": 0.05,
        ...     "ropo_share": 0, "try_and_buy_share": 0, "click_and_collect_share": 0,
        ...     "basket_value": 0, "journeys": 1.0}, {"basket_value": 90.0, "journeys": 1.5})
        'Online browsers'
    """
    channel = next(
        (words for column, least, words in _CHANNEL_WORDS if persona[column] >= least),
        "omnichannel",
    )
    pattern = max(_PATTERN_WORDS, key=lambda item: persona[item[0]])
    if persona["conversion_rate"] < BROWSER_RATE:
        what = f"{channel} browsers"
    elif persona[pattern[0]] >= PATTERN_SHARE:
        what = pattern[1]
    else:
        what = f"{channel} buyers"
    qualities = []
    if overall["basket_value"] and persona["basket_value"] >= HIGH_BASKET * overall["basket_value"]:
        qualities.append("high-basket")
    if overall["journeys"] and persona["journeys"] >= REPEAT * overall["journeys"]:
        qualities.append("repeat")
    name = " ".join([*qualities, what])
    return name[0].upper() + name[1:]


def _percent(value: float) -> str:
    return f"{value:.0%}"


def persona_description(persona: dict[str, float], *, customers_share: float) -> str:
    """A sentence of a persona's numbers: size, journeys, conversion, basket, channels,
    patterns, time to convert and recency."""
    parts = [
        f"{_percent(customers_share)} of customers",
        f"{persona['journeys']:.1f} journeys each",
        f"{_percent(persona['conversion_rate'])} of their closed journeys convert",
    ]
    if persona["basket_value"] > 0:
        parts.append(f"average basket {persona['basket_value']:,.2f}")
    parts.append(
        f"{_percent(persona['online_share'])} of their steps online, "
        f"{_percent(persona['offline_share'])} offline"
    )
    patterns = [
        f"{_percent(persona[column])} {label}"
        for column, label in (
            ("ropo_share", "ROPO"),
            ("click_and_collect_share", "click-and-collect"),
            ("try_and_buy_share", "try-and-buy"),
        )
        if persona[column] >= 0.05
    ]
    if patterns:
        parts.append("journeys " + ", ".join(patterns))
    days = persona.get("days_to_convert")
    if days is not None and not math.isnan(days):
        parts.append(f"{days:.1f} days to convert (median)")
    parts.append(f"last seen {persona['recency_days']:.0f} days before the end of the data")
    return "; ".join(parts) + "."


DESCRIBED = (
    "journeys",
    "conversion_rate",
    "basket_value",
    "online_share",
    "offline_share",
    "furthest_stage",
    "days_to_convert",
    "ropo_share",
    "click_and_collect_share",
    "try_and_buy_share",
    "recency_days",
)


def describe_personas(features: pl.DataFrame, assigned: pl.DataFrame) -> pl.DataFrame:
    """One row per persona: its name and description, customers and their share, journeys,
    conversions, revenue, and the averages of :data:`DESCRIBED` (``days_to_convert``: the
    median over its customers who converted; ``conversion_rate``: conversions over closed
    journeys, pooled)."""
    # in key order whatever order the rows came in: float sums are then the same every run
    joined = features.sort("customer_key").join(
        assigned, on="customer_key", how="inner", maintain_order="left"
    )
    total = max(joined.height, 1)
    buyers = joined.filter(pl.col("conversions") > 0)
    overall = {
        "basket_value": float(buyers.get_column("basket_value").mean() or 0.0),  # type: ignore[arg-type]
        "journeys": float(joined.get_column("journeys").mean() or 0.0),  # type: ignore[arg-type]
    }
    per_persona = (
        joined.group_by("persona", maintain_order=True)
        .agg(
            pl.len().alias("customers"),
            pl.col("journeys").sum().alias("all_journeys"),
            pl.col("conversions").sum(),
            pl.col("closed_journeys").sum(),
            pl.col("revenue").sum(),
            pl.col("journeys").mean(),
            pl.col("basket_value").filter(pl.col("conversions") > 0).mean().fill_null(0.0),
            *(
                pl.col(name).mean()
                for name in DESCRIBED
                if name not in ("journeys", "basket_value", "conversion_rate", "days_to_convert")
            ),
            pl.col("days_to_convert").median(),
        )
        .with_columns(
            (pl.col("conversions") / pl.col("closed_journeys"))
            .fill_nan(0.0)
            .fill_null(0.0)
            .alias("conversion_rate"),
            (pl.col("customers") / total).alias("share_of_customers"),
        )
        .sort("persona")
    )
    names, descriptions = [], []
    for row in per_persona.iter_rows(named=True):
        numbers = {k: (0.0 if v is None else float(v)) for k, v in row.items() if k in DESCRIBED}
        numbers["days_to_convert"] = (
            math.nan if row["days_to_convert"] is None else float(row["days_to_convert"])
        )
        names.append(persona_name(numbers, overall))
        descriptions.append(persona_description(numbers, customers_share=row["share_of_customers"]))
    unique = _numbered_duplicates(names)
    return per_persona.select(
        "persona",
        pl.Series("name", unique, dtype=pl.String),
        pl.Series("description", descriptions, dtype=pl.String),
        pl.col("customers").cast(pl.Int64),
        "share_of_customers",
        pl.col("all_journeys").cast(pl.Int64).alias("journeys"),
        pl.col("conversions").cast(pl.Int64),
        "conversion_rate",
        pl.col("revenue").cast(pl.Float64),
        pl.col("basket_value").cast(pl.Float64),
        pl.col("journeys").cast(pl.Float64).alias("journeys_per_customer"),
        *(pl.col(name).cast(pl.Float64) for name in DESCRIBED[3:]),
    )


def _numbered_duplicates(names: list[str]) -> list[str]:
    """Names made unique: the second "Online buyers" is "Online buyers (2)"."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique
