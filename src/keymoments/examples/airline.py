"""The demo airline: realistic journeys over Carlzon's moments of truth, with planted ground truth.

    >>> demo = generate_airline(200, seed=1)
    >>> list(demo.events.columns) == list(EVENT_FIELDS)
    True
    >>> sorted(demo.ground_truth["drivers"]["null"])
    ['airport-arrival', 'arrival', 'information', 'security']

How the data is made (every number is recorded in ``ground_truth``):

* **Customers** have a segment (business / leisure), a home airport, a signup date, a trip rate and a latent
  *mood* (normal, sd 0.25) that lifts or lowers every experience they have, so touchpoint experiences are
  correlated across touchpoints. Mood has no direct effect on any outcome.
* **Journeys** (trips) visit the touchpoints in order; reach is realistic (information is optional, baggage only
  with a checked bag, support only after a crisis or for a routine question). Each visited touchpoint has a latent
  valence ``v = clip(mean[tp] + mood + journey_noise + noise + bumps)`` in [-1, 1]; ratings (csat5 mostly,
  stars5, ces7, nps at the journey's end) and texts are drawn from ``v``.
* **Crises** (cancelled or delayed flight, lost bag) hit ~12% of journeys; the customer then contacts support,
  which either recovers them (``resolved``, compensation paid) or fails (``failed``).
* **Outcomes** (per customer): ``retained`` is Bernoulli(sigmoid(logit)), with the logit built from the
  *drivers* (customer-mean latent valence per touchpoint, centred at the planted mean; null touchpoints weigh
  exactly 0), the journey *memory* (peak-end or mean over the driver touchpoints' moments), the recovery
  effects, milestones, segment and trip count; ``nps`` depends on memory only; ``spend_next_12m`` rises with
  happiness (log-linear in driver experience and memory) and is 0 for churned customers.

Money convention for ``value``: positive is money the customer paid us (the fare, on ``reservation``),
negative is money paid to the customer (compensation or refund, on ``support`` with outcome ``resolved``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keymoments.events import EVENT_FIELDS, JourneyModel, did_you_mean
from keymoments.examples.airline_texts import SPECIAL_TEXTS, TOUCHPOINT_TEXTS
from keymoments.exceptions import InvalidParameterError

__all__ = ["JOURNEY_YAML", "MEMORY_MODELS", "TOUCHPOINTS", "AirlineDemo", "generate_airline"]

JOURNEY_YAML = Path(__file__).with_name("airline_journey.yaml")
MEMORY_MODELS = ("peak_end", "mean")
TOUCHPOINTS = ("information", "reservation", "airport-arrival", "check-in", "security",
               "boarding", "flight", "arrival", "baggage", "support")  # fmt: skip
INFO, RES, AAR, CHK, SEC, BRD, FLT, ARR, BAG, SUP = range(len(TOUCHPOINTS))
STAGES = ("research", "booking", "airport", "airport", "airport", "airport", "in-flight",
          "post-flight", "post-flight", "aftercare")  # fmt: skip

# Planted per touchpoint: mean latent valence (the centre of the driver terms), share of visits that are rated,
# retention logit coefficient and log-spend coefficient. Zero coefficients are the null touchpoints.
_PLANT = {  #                mean  rated  beta  gamma
    "information":      (0.15, 0.30, 0.0, 0.0),
    "reservation":      (0.25, 0.45, 0.5, 0.3),
    "airport-arrival":  (0.05, 0.30, 0.0, 0.0),
    "check-in":         (0.05, 0.55, 1.2, 0.3),
    "security":        (-0.40, 0.45, 0.0, 0.0),
    "boarding":         (0.40, 0.45, 0.4, 0.2),
    "flight":           (0.50, 0.65, 1.4, 0.6),
    "arrival":          (0.10, 0.35, 0.0, 0.0),
    "baggage":         (-0.35, 0.55, 1.0, 0.3),
    "support":          (0.20, 0.75, 1.2, 0.4),
}  # fmt: skip
MEAN, RATED, BETA, GAMMA = (np.array([_PLANT[t][i] for t in TOUCHPOINTS]) for i in range(4))
DRIVERS = np.flatnonzero(BETA > 0)
PITS, PEAKS = ("security", "baggage"), ("flight", "boarding")

MOOD_SD, TASTE_SD, JOURNEY_SD, NOISE_SD, RATING_NOISE_SD = 0.15, 0.20, 0.10, 0.25, 0.18
CRISIS_RATE, CRISIS_MIX = 0.12, {"cancelled": 0.30, "delayed": 0.40, "lost": 0.30}
CRISIS_VALENCE = {"cancelled": -0.80, "delayed": -0.50, "lost": -0.85}
P_RECOVERED, RECOVERED_VALENCE, FAILED_VALENCE, ROUTINE_SUPPORT_RATE = 0.55, 0.65, -0.80, 0.04
UPGRADE_BUMP, STAR_BUMP, MILESTONE_BUMP = 0.5, 0.4, 0.3
MEMORY_WEIGHTS = {"peak_end": {"worst": 0.5, "end": 0.5}, "mean": {"mean": 1.0}}
# Retention logit terms besides the drivers; the intercept is calibrated to TARGET_RETENTION.
TARGET_RETENTION = 0.80
LOGIT = {"memory": 3.0, "recovered": 1.0, "unrecovered": -0.8, "business": 0.25, "log1p_journeys": 0.3,
         "tenth_flight_marked": 0.6, "one_year": -0.4}  # fmt: skip
NPS_SLOPE, NPS_SD, NPS_MEAN = 6.0, 1.2, 7.0
SPEND_MEMORY, SPEND_SD, FARE_BASE = 1.0, 0.3, {"business": 450.0, "leisure": 150.0}
BANDS = {"unhappy": (-np.inf, -0.05), "middling": (-0.05, 0.30), "happy": (0.30, np.inf)}

AIRPORTS = ("CPH", "ARN", "OSL", "HEL", "LHR", "FRA", "CDG", "AMS", "BCN", "MUC", "ZRH", "JFK")
_HOME_WEIGHTS = np.array([25, 18, 15, 7, 7, 5, 5, 5, 4, 4, 3, 2]) / 100
CHANNELS = ("web", "app", "phone", "airport", "email", "onboard")
WEB, APP, PHONE, AIRPORT, EMAIL, ONBOARD = range(len(CHANNELS))
OUTCOMES = ("completed", "cancelled", "delayed", "lost", "resolved", "failed", "upgraded")
COMPLETED, CANCELLED, DELAYED, LOST, RESOLVED, FAILED, UPGRADED = range(len(OUTCOMES))
SCALES = ("csat5", "stars5", "nps", "ces7")
_SCALE_LO, _SCALE_HI = np.array([1.0, 1, 0, 1]), np.array([5.0, 5, 10, 7])
# Employee pools: (prefix, staff per airport or None for one global pool of `size`).
_POOLS = {"check-in": ("CI", 6), "boarding": ("GA", 6), "baggage": ("BG", 4), "flight": ("CREW", 80),
          "support": ("SUP", 40)}  # fmt: skip
DAY = 86_400


@dataclass
class AirlineDemo:
    """A generated airline dataset: events, outcomes, customers, the journey model and what was planted.

    ``latent`` holds the per-customer planted quantities (mood, memory, driver term, planted retention
    probability, mean latent valence per touchpoint ``x_<touchpoint>``); it is for tests and is not written.
    """

    events: pd.DataFrame
    outcomes: pd.DataFrame
    customers: pd.DataFrame
    ground_truth: dict[str, Any]
    journey: JourneyModel
    latent: pd.DataFrame = field(repr=False)

    def __repr__(self) -> str:
        g = self.ground_truth["generator"]
        return (f"AirlineDemo({g['n_customers']} customers, {g['n_journeys']} journeys, "
                f"{g['n_events']} events, memory={g['memory']!r}, seed={g['seed']})")  # fmt: skip

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write the six demo files into ``folder`` (created if needed) and return their paths by file name.

        ``attrs`` is written as a JSON string (empty when absent); ``ts`` as ISO-8601 UTC in the CSV.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {name: folder / name for name in ("events.parquet", "events.csv", "outcomes.csv",
                                                   "customers.csv", "ground_truth.json", "journey.yaml")}  # fmt: skip
        flat = self.events.copy()
        flat["attrs"] = [None if a is None else json.dumps(a, sort_keys=True) for a in flat["attrs"]]
        flat.to_parquet(paths["events.parquet"], index=False)
        flat.to_csv(paths["events.csv"], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        self.outcomes.to_csv(paths["outcomes.csv"], index=False)
        self.customers.to_csv(paths["customers.csv"], index=False, date_format="%Y-%m-%d")
        paths["ground_truth.json"].write_text(json.dumps(self.ground_truth, indent=2), encoding="utf-8")
        shutil.copyfile(JOURNEY_YAML, paths["journey.yaml"])
        return paths


def generate_airline(
    n_customers: int = 5000,
    *,
    seed: int = 0,
    memory: str = "peak_end",
    start: str = "2025-01-01",
    days: int = 365,
) -> AirlineDemo:
    """Generate the demo airline's events, outcomes and customers, with the planted ground truth.

    ``memory`` picks how journeys are remembered in the outcomes: ``"peak_end"`` (worst moment and last
    moment) or ``"mean"`` (the average moment). The events do not depend on it: the same seed gives the same
    events under either model, and only the outcomes differ. Same arguments, same frames.
    """
    _check(n_customers, seed, memory, start, days)
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
    ev_seq, out_seq = np.random.SeedSequence(seed).spawn(2)
    sim = _simulate(n_customers, np.random.default_rng(ev_seq), int(t0.value // 10**9), days)
    latent, outcomes = _outcomes(sim, memory, np.random.default_rng(out_seq))
    events = _events_frame(sim, np.random.default_rng(ev_seq.spawn(1)[0]))
    customers = pd.DataFrame({
        "customer_id": sim["cid"],
        "segment": np.where(sim["business"], "business", "leisure"),
        "tier": sim["tier"],
        "home_airport": np.array(AIRPORTS)[sim["home"]],
        "signup_date": pd.to_datetime(sim["signup"], unit="s", utc=True).normalize(),
        "tenure_days": (sim["end"] - sim["signup"]) // DAY,
    })  # fmt: skip
    gt = _ground_truth(sim, latent, outcomes, events, memory, seed=seed, start=t0.isoformat(), days=days)
    return AirlineDemo(events, outcomes, customers, gt, JourneyModel.from_yaml(JOURNEY_YAML), latent)


def _check(n_customers: int, seed: int, memory: str, start: str, days: int) -> None:
    errors = []
    if isinstance(n_customers, bool) or not isinstance(n_customers, int | np.integer) or n_customers < 1:
        errors.append(f"The 'n_customers' parameter of generate_airline must be an int >= 1. Got {n_customers!r} instead.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        errors.append(f"The 'seed' parameter of generate_airline must be an int >= 0. Got {seed!r} instead.")
    if memory not in MEMORY_MODELS:
        errors.append(f"The 'memory' parameter of generate_airline must be one of {list(MEMORY_MODELS)}. "
                      f"Got {memory!r} instead.{did_you_mean(memory, MEMORY_MODELS)}")  # fmt: skip
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 60:
        errors.append(f"The 'days' parameter of generate_airline must be an int >= 60. Got {days!r} instead.")
    try:
        pd.Timestamp(start)
    except (ValueError, TypeError):
        errors.append(f"The 'start' parameter of generate_airline must be an ISO-8601 date. Got {start!r} instead.")
    if errors:
        raise InvalidParameterError(" ".join(errors))


def _simulate(n: int, rng: np.random.Generator, start: int, days: int) -> dict[str, Any]:
    """Customers, journeys and the journey x touchpoint matrices (visits, valence, times, codes)."""
    end = start + days * DAY
    business = rng.random(n) < 0.25
    home = rng.choice(len(AIRPORTS), size=n, p=_HOME_WEIGHTS)
    mood = rng.normal(0.0, MOOD_SD, n)
    rate = np.where(business, rng.gamma(2.0, 4.5, n), rng.gamma(1.2, 1.0, n))  # trips per year
    tier = np.where(rate >= 10, "gold", np.where(rate >= 4, "silver", "basic"))
    new = rng.random(n) < 0.15
    signup = np.where(new, start + (rng.random(n) * 0.7 * days * DAY).astype(np.int64),
                      start - (np.minimum(rng.exponential(1200, n), 5000) * DAY).astype(np.int64) - DAY)
    avail = np.maximum(signup, start)
    n_trips = np.minimum(1 + rng.poisson(rate * (end - avail) / (days * DAY)), 60)
    first = np.cumsum(n_trips) - n_trips

    # Journeys: booked lead days before departure, information looked up a few days before booking.
    cust = np.repeat(np.arange(n), n_trips)
    J = len(cust)
    bj = business[cust]
    lead = np.maximum(np.where(bj, rng.gamma(1.5, 5.0, J), rng.gamma(2.0, 15.0, J)), 0.25) * DAY
    gap = rng.uniform(0.2, 7.0, J) * DAY
    room = (end - 8 * DAY) - avail[cust] - DAY
    pre = np.minimum(lead + gap, 0.8 * room)
    lead, gap = lead * pre / (lead + gap), gap * pre / (lead + gap)
    dep = avail[cust] + pre + DAY + rng.random(J) * (room - pre)
    dep = (dep // DAY) * DAY + 6 * 3600 + rng.integers(0, 192, J) * 300  # 06:00-21:55
    order = np.lexsort((dep, cust))
    dep, lead, gap = dep[order].astype(np.int64), lead[order], gap[order]
    trip_no = np.arange(J) - first[cust] + 1
    orig = home[cust]
    dest = (orig + 1 + rng.integers(0, len(AIRPORTS) - 1, J)) % len(AIRPORTS)
    long_haul = (orig == AIRPORTS.index("JFK")) | (dest == AIRPORTS.index("JFK"))
    duration = np.where(long_haul, rng.uniform(450, 540, J), rng.uniform(55, 200, J)) * 60
    has_bag = rng.random(J) < np.where(bj, 0.2, 0.5)

    crisis = rng.random(J) < CRISIS_RATE
    kind = rng.choice(3, size=J, p=list(CRISIS_MIX.values())) + CANCELLED  # CANCELLED, DELAYED or LOST
    kind = np.where(crisis, np.where((kind == LOST) & ~has_bag, DELAYED, kind), COMPLETED)
    recovered = crisis & (rng.random(J) < P_RECOVERED)
    routine = ~crisis & (rng.random(J) < ROUTINE_SUPPORT_RATE)
    p_up = np.select([tier[cust] == "gold", tier[cust] == "silver"], [0.08, 0.04], 0.015)
    upgraded = (kind != CANCELLED) & (rng.random(J) < p_up)
    marked = (trip_no == 10) & (rng.random(J) < 0.5)
    delay = np.select([kind == DELAYED, kind == CANCELLED],
                      [rng.uniform(2, 6, J) * 3600, rng.uniform(5, 20, J) * 3600], 0)  # fmt: skip

    T = len(TOUCHPOINTS)
    vis = np.ones((J, T), dtype=bool)
    vis[:, INFO] = rng.random(J) < np.where(bj, 0.25, 0.5)
    vis[:, AAR] = rng.random(J) < 0.65
    vis[:, CHK] = rng.random(J) < 0.96
    vis[:, SEC] = rng.random(J) < 0.92
    vis[:, BRD] = kind != CANCELLED
    vis[:, ARR] = rng.random(J) < 0.80
    vis[:, BAG] = has_bag
    vis[:, SUP] = crisis | routine

    chan = np.full((J, T), AIRPORT)
    chan[:, INFO] = rng.choice([WEB, APP, PHONE], J, p=[0.55, 0.30, 0.15])
    chan[:, RES] = rng.choice([WEB, APP, PHONE], J, p=[0.50, 0.35, 0.15])
    chan[:, CHK] = rng.choice([APP, WEB, AIRPORT], J, p=[0.35, 0.15, 0.50])
    chan[:, FLT] = ONBOARD
    chan[:, SUP] = rng.choice([PHONE, EMAIL, APP], J, p=[0.50, 0.25, 0.25])

    names, offsets = [], {}
    for tp, (prefix, size) in _POOLS.items():
        offsets[tp] = len(names)
        if tp in ("flight", "support"):
            names += [f"{prefix}-{i + 1:03d}" for i in range(size)]
        else:
            names += [f"{a}-{prefix}{i + 1:02d}" for a in AIRPORTS for i in range(size)]
    emp = np.full((J, T), -1)
    emp[:, CHK] = np.where(chan[:, CHK] == AIRPORT, offsets["check-in"] + orig * 6 + rng.integers(0, 6, J), -1)
    emp[:, BRD] = offsets["boarding"] + orig * 6 + rng.integers(0, 6, J)
    emp[:, FLT] = offsets["flight"] + rng.integers(0, 80, J)
    emp[:, BAG] = offsets["baggage"] + dest * 4 + rng.integers(0, 4, J)
    emp[:, SUP] = offsets["support"] + rng.integers(0, 40, J)
    emp[~vis] = -1
    crew, hub = rng.choice(80, 2, replace=False), rng.integers(0, 6, 2)
    stars = {
        names[offsets["flight"] + crew[0]]: FLT, names[offsets["flight"] + crew[1]]: FLT,
        names[offsets["check-in"] + hub[0]]: CHK, names[offsets["boarding"] + hub[1]]: BRD,
        names[offsets["support"] + rng.integers(0, 40)]: SUP,
    }  # fmt: skip

    # Latent valence: touchpoint mean + customer mood + journey noise + event noise + planted moments.
    taste = rng.normal(0, TASTE_SD, (n, len(TOUCHPOINTS)))  # a customer's lasting view of each touchpoint
    val = (MEAN + mood[cust][:, None] + taste[cust] + rng.normal(0, JOURNEY_SD, J)[:, None]
           + rng.normal(0, NOISE_SD, (J, T)))  # fmt: skip
    m = mood[cust]
    for code, name in ((CANCELLED, "cancelled"), (DELAYED, "delayed")):
        hit = kind == code
        val[hit, FLT] = CRISIS_VALENCE[name] + 0.3 * m[hit] + rng.normal(0, 0.12, hit.sum())
    hit = kind == LOST
    val[hit, BAG] = CRISIS_VALENCE["lost"] + 0.3 * m[hit] + rng.normal(0, 0.12, hit.sum())
    val[crisis, SUP] = (np.where(recovered[crisis], RECOVERED_VALENCE, FAILED_VALENCE)
                        + 0.3 * m[crisis] + rng.normal(0, 0.12, crisis.sum()))  # fmt: skip
    val[upgraded, BRD] += UPGRADE_BUMP
    val[upgraded, FLT] += 0.2
    val[marked, FLT] += MILESTONE_BUMP
    star_codes = np.array([names.index(s) for s in stars])
    val[np.isin(emp, star_codes)] += STAR_BUMP
    val = np.where(vis, np.clip(val, -1.0, 1.0), np.nan)

    outc = np.full((J, T), COMPLETED)
    outc[:, FLT] = np.where((kind == CANCELLED) | (kind == DELAYED), kind, COMPLETED)
    outc[:, BAG] = np.where(kind == LOST, LOST, COMPLETED)
    outc[:, SUP] = np.select([recovered, crisis], [RESOLVED, FAILED], COMPLETED)
    outc[:, BRD] = np.where(upgraded, UPGRADED, outc[:, BRD])

    ts = np.empty((J, T))
    ts[:, RES] = dep - lead
    ts[:, INFO] = ts[:, RES] - gap
    for col, lo, hi in ((AAR, 110, 180), (CHK, 70, 105), (SEC, 40, 65), (BRD, 15, 35)):
        ts[:, col] = dep - rng.uniform(lo, hi, J) * 60
    ts[:, FLT] = dep + np.where(kind == DELAYED, delay, 0)
    ts[:, ARR] = dep + delay + duration
    ts[:, BAG] = ts[:, ARR] + rng.uniform(10, 45, J) * 60
    ts[:, SUP] = ts[:, ARR] + rng.uniform(0.5, 6.0, J) * DAY

    fare = np.exp(rng.normal(np.log(np.where(bj, FARE_BASE["business"], FARE_BASE["leisure"])), 0.4, J))
    fare = np.round(fare * np.where(long_haul, 3.0, 1.0), 2)
    comp = np.select([long_haul & (kind != LOST), kind == LOST], [600.0, rng.uniform(50, 800, J).round(0)],
                     np.where(duration > 150 * 60, 400.0, 250.0))  # EU261-like bands  # fmt: skip
    value = np.full((J, T), np.nan)
    value[:, RES] = fare
    value[:, SUP] = np.where(recovered, -comp, np.nan)

    return dict(n=n, start=start, end=end, business=business, home=home, mood=mood, rate=rate, tier=tier,
                new=new, signup=signup, n_trips=n_trips, first=first, cust=cust, trip_no=trip_no, orig=orig,
                dest=dest, kind=kind, crisis=crisis, recovered=recovered, routine=routine, upgraded=upgraded,
                marked=marked, delay=delay, vis=vis, val=val, chan=chan, emp=emp, emp_names=np.array(names),
                stars=stars, outc=outc, ts=np.round(ts).astype(np.int64), value=value,
                cid=np.array([f"c{i + 1:06d}" for i in range(n)], dtype=object))  # fmt: skip


def _per_customer(sim: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Sum a per-journey array (or matrix) over each customer's journeys."""
    return np.add.reduceat(x, sim["first"], axis=0)


def _outcomes(sim: dict[str, Any], memory: str, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Planted outcome model: drivers + memory + recovery + milestones -> retained, nps, spend, repurchase."""
    val, vis, n_trips, n = sim["val"], sim["vis"], sim["n_trips"], sim["n"]
    counts = _per_customer(sim, vis.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        xbar = _per_customer(sim, np.nan_to_num(val)) / counts  # customer-mean latent valence per touchpoint
    dev = np.where(counts > 0, xbar - MEAN, 0.0)
    driver_term = dev @ BETA

    vd = val[:, DRIVERS]  # journey memory over the moments that matter (null touchpoints are not remembered)
    if memory == "peak_end":
        seen = ~np.isnan(vd)
        last = vd[np.arange(len(vd)), vd.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1)]
        w = MEMORY_WEIGHTS["peak_end"]
        mem_j = w["worst"] * np.nanmin(vd, axis=1) + w["end"] * last
    else:
        mem_j = np.nanmean(vd, axis=1)
    mem = _per_customer(sim, mem_j) / n_trips

    crises = _per_customer(sim, sim["crisis"].astype(int))
    failed = _per_customer(sim, (sim["crisis"] & ~sim["recovered"]).astype(int))
    group = np.select([failed > 0, crises > 0], ["unrecovered", "recovered"], "none")
    marked = _per_customer(sim, sim["marked"].astype(int)) > 0
    one_year = _one_year(sim)
    lin = (driver_term + LOGIT["memory"] * mem + LOGIT["recovered"] * (group == "recovered")
           + LOGIT["unrecovered"] * (group == "unrecovered") + LOGIT["business"] * sim["business"]
           + LOGIT["log1p_journeys"] * np.log1p(n_trips) + LOGIT["tenth_flight_marked"] * marked
           + LOGIT["one_year"] * one_year)  # fmt: skip
    lo, hi = -20.0, 20.0  # calibrate the intercept so that the mean planted retention is TARGET_RETENTION
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(_sigmoid(mid + lin)) < TARGET_RETENTION else (lo, mid)
    intercept = round((lo + hi) / 2, 6)
    p = _sigmoid(intercept + lin)
    u_retained = rng.random(n)
    retained = u_retained < p

    nps_c = round(NPS_MEAN - NPS_SLOPE * float(np.mean(mem)), 6)
    nps = np.clip(np.rint(nps_c + NPS_SLOPE * mem + rng.normal(0, NPS_SD, n)), 0, 10).astype(int)
    happiness = dev @ GAMMA + SPEND_MEMORY * mem
    fare = np.where(sim["business"], FARE_BASE["business"], FARE_BASE["leisure"])
    spend = (1 + sim["rate"]) * fare * np.exp(happiness + rng.normal(0, SPEND_SD, n))
    spend = np.where(retained, np.round(spend, 2), 0.0)
    p_rep = 1 - np.exp(-sim["rate"] * 90 / 365 * np.exp(0.5 * happiness))
    repurchased = retained & (rng.random(n) < p_rep)

    with np.errstate(invalid="ignore", divide="ignore"):
        mean_val = np.nansum(xbar * counts, axis=1) / counts.sum(axis=1)
    band = np.select([mean_val < BANDS["unhappy"][1], mean_val < BANDS["middling"][1]], ["unhappy", "middling"],
                     "happy")  # fmt: skip
    latent = pd.DataFrame({"customer_id": sim["cid"], "mood": sim["mood"], "n_journeys": n_trips,
                           "crisis_group": group, "tenth_flight_marked": marked, "one_year": one_year,
                           "memory": mem, "driver_term": driver_term, "happiness": happiness,
                           "mean_valence": mean_val, "band": band, "logit_retained": intercept + lin,
                           "p_retained": p, "u_retained": u_retained})  # fmt: skip
    for i, tp in enumerate(TOUCHPOINTS):
        latent[f"x_{tp}"] = xbar[:, i]
    latent.attrs.update(intercept=intercept, nps_intercept=nps_c)
    outcomes = pd.DataFrame({"customer_id": sim["cid"], "retained": retained, "repurchased_90d": repurchased,
                             "spend_next_12m": spend, "nps": nps})  # fmt: skip
    return latent, outcomes


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _one_year(sim: dict[str, Any]) -> np.ndarray:
    """Customers whose first anniversary falls inside the window."""
    anniversary = sim["signup"] + 365 * DAY
    return (anniversary >= sim["start"]) & (anniversary < sim["end"])


def _events_frame(sim: dict[str, Any], rng: np.random.Generator) -> pd.DataFrame:
    """Flatten the visited cells into contract events, with ratings, texts and attrs drawn from the valence."""
    j, t = np.nonzero(sim["vis"])  # row-major: each journey's touchpoints in order
    order = np.argsort(sim["ts"][j, t], kind="stable")
    j, t = j[order], t[order]
    E = len(j)
    v = sim["val"][j, t]
    kind, outc = sim["kind"][j], sim["outc"][j, t]
    special = (outc != COMPLETED) | (t == SUP)

    # Ratings: csat5 mostly; stars5 for some flights and bookings; ces7 for some check-ins and support
    # contacts; nps for some journeys' last moment before any support contact.
    rated = rng.random(E) < np.where(special, 0.75, RATED[t])
    u = rng.random(E)
    scale = np.select([(t == FLT) & (u < 0.35), (t <= RES) & (u < 0.15), (t == CHK) & (u < 0.35),
                       (t == SUP) & (u < 0.40)], [1, 1, 3, 3], 0)  # fmt: skip
    vis = sim["vis"]
    end_col = np.where(vis[:, BAG], BAG, np.where(vis[:, ARR], ARR, FLT))
    scale = np.where((t == end_col[j]) & (rng.random(E) < 0.35), 2, scale)
    obs = np.clip(v + rng.normal(0, RATING_NOISE_SD, E), -1, 1)
    pos = np.where(scale == 3, (1 - obs) / 2, (obs + 1) / 2)  # ces7 is inverted: lower is better
    rating = np.where(rated, np.rint(_SCALE_LO[scale] + pos * (_SCALE_HI[scale] - _SCALE_LO[scale])), np.nan)
    rating_scale = np.where(rated, np.array(SCALES, dtype=object)[scale], None)

    # Texts: more likely after intense moments; the template's sentiment follows the valence.
    has_text = rng.random(E) < np.where(special, 0.55, 0.10 + 0.22 * np.abs(v))
    polarity = np.select([v < -0.2, v > 0.3], [0, 2], 1)
    topic = np.full(E, "", dtype=object)
    neg, posv = polarity == 0, polarity == 2
    topic[(t == FLT) & (outc == CANCELLED) & neg] = "cancelled"
    topic[(t == FLT) & (outc == DELAYED) & neg] = "delayed"
    topic[(t == BAG) & (outc == LOST) & neg] = "lost"
    topic[(t == SUP) & (outc == RESOLVED) & posv] = "recovered"
    topic[(t == SUP) & (outc == FAILED) & neg] = "unrecovered"
    topic[(t == BRD) & (outc == UPGRADED) & posv] = "upgraded"
    topic[(t == FLT) & sim["marked"][j] & posv] = "milestone"
    text = np.full(E, None, dtype=object)
    for name, options in SPECIAL_TEXTS.items():
        hit = np.flatnonzero(has_text & (topic == name))
        text[hit] = np.array(options, dtype=object)[rng.integers(0, len(options), len(hit))]
    for ti, tp in enumerate(TOUCHPOINTS):
        for pi, pol in enumerate(("negative", "neutral", "positive")):
            hit = np.flatnonzero(has_text & (topic == "") & (t == ti) & (polarity == pi))
            options = np.array(TOUCHPOINT_TEXTS[tp][pol], dtype=object)
            text[hit] = options[rng.integers(0, len(options), len(hit))]

    airports = np.array(AIRPORTS, dtype=object)
    orig, dest = sim["orig"][j], sim["dest"][j]
    location = np.where(t >= ARR, airports[dest], airports[orig])
    location = np.where((t <= RES) | (t == SUP), None, location)
    emp = sim["emp"][j, t]
    employee = np.where(emp >= 0, sim["emp_names"].astype(object)[np.maximum(emp, 0)], None)

    attrs = np.full(E, None, dtype=object)
    fl = np.flatnonzero(t == FLT)
    delay_min = np.rint(sim["delay"][j[fl]] / 60).astype(int)
    attrs[fl] = [
        {"flight": f"KM{100 + 12 * o + d}", "origin": AIRPORTS[o], "destination": AIRPORTS[d]}
        | ({"delay_minutes": int(dm)} if k == DELAYED else {})
        | ({"milestone": "tenth_flight", "marked": True} if mk else {})
        for o, d, k, dm, mk in zip(orig[fl], dest[fl], kind[fl], delay_min, sim["marked"][j[fl]], strict=True)
    ]
    sp = np.flatnonzero(t == SUP)
    reasons = {CANCELLED: "cancellation", DELAYED: "delay", LOST: "lost bag", COMPLETED: "booking change"}
    attrs[sp] = [{"reason": reasons[k]} for k in kind[sp]]

    jid = np.array([f"{sim['cid'][c]}-t{k:03d}" for c, k in zip(sim["cust"], sim["trip_no"], strict=True)],
                   dtype=object)  # fmt: skip
    frame = {
        "event_id": np.array([f"e{i:08d}" for i in range(E)], dtype=object),
        "customer_id": sim["cid"][sim["cust"][j]],
        "journey_id": jid[j],
        "ts": pd.to_datetime(sim["ts"][j, t], unit="s", utc=True),
        "touchpoint": np.array(TOUCHPOINTS, dtype=object)[t],
        "stage": np.array(STAGES, dtype=object)[t],
        "channel": np.array(CHANNELS, dtype=object)[sim["chan"][j, t]],
        "outcome": np.array(OUTCOMES, dtype=object)[outc],
        "rating": rating,
        "rating_scale": rating_scale,
        "text": text,
        "value": sim["value"][j, t],
        "employee_id": employee,
        "location_id": location,
        "attrs": attrs,
    }
    df = pd.DataFrame(frame, columns=list(EVENT_FIELDS))
    df["attrs"] = pd.Series(attrs, dtype=object)
    return df


def _ground_truth(sim: dict[str, Any], latent: pd.DataFrame, outcomes: pd.DataFrame, events: pd.DataFrame,
                  memory: str, *, seed: int, start: str, days: int) -> dict[str, Any]:  # fmt: skip
    """Everything planted, as plain JSON: the numbers a later analysis should recover."""

    def f(x: Any) -> float:
        return round(float(x), 6)

    ret = outcomes["retained"].to_numpy()
    null = [tp for tp, b in zip(TOUCHPOINTS, BETA, strict=True) if b == 0]
    groups = {}
    for g in ("none", "recovered", "unrecovered"):
        mask = latent["crisis_group"].to_numpy() == g
        groups[g] = {"n_customers": int(mask.sum()), "retention_rate": f(ret[mask].mean()) if mask.any() else None,
                     "planted_p_retained": f(latent["p_retained"][mask].mean()) if mask.any() else None}  # fmt: skip
    bands = {}
    spend = outcomes["spend_next_12m"].to_numpy()
    for b, (lo, hi) in BANDS.items():
        mask = latent["band"].to_numpy() == b
        bands[b] = {"mean_valence_range": [None if np.isinf(lo) else lo, None if np.isinf(hi) else hi],
                    "n_customers": int(mask.sum()), "mean_spend": f(spend[mask].mean()) if mask.any() else None,
                    "retention_rate": f(ret[mask].mean()) if mask.any() else None}  # fmt: skip
    gain_mid = bands["middling"]["n_customers"] * ((bands["happy"]["mean_spend"] or 0) - (bands["middling"]["mean_spend"] or 0))
    gain_low = bands["unhappy"]["n_customers"] * ((bands["middling"]["mean_spend"] or 0) - (bands["unhappy"]["mean_spend"] or 0))
    cid, trip_no, jcust = sim["cid"], sim["trip_no"], sim["cust"]
    tenth = np.flatnonzero(trip_no == 10)
    one_year, new = latent["one_year"].to_numpy(), sim["new"]
    star_rows = {}
    for emp_id, tp in sim["stars"].items():
        star_rows[emp_id] = {"touchpoint": TOUCHPOINTS[tp], "bump": STAR_BUMP,
                             "n_events": int((events["employee_id"] == emp_id).sum())}  # fmt: skip
    crisis_j = sim["crisis"]
    tp_means = events.groupby("touchpoint", sort=False).size()
    return {
        "generator": {"name": "keymoments.examples.airline", "version": 1, "seed": int(seed), "memory": memory,
                      "start": start, "days": int(days), "n_customers": int(sim["n"]),
                      "n_journeys": int(len(jcust)), "n_events": int(len(events))},  # fmt: skip
        "conventions": {
            "valence": "latent experience in [-1, 1]; ratings are drawn from it with noise (sd 0.18 on valence)",
            "value": "positive = money the customer paid (fare on reservation); negative = compensation or "
                     "refund paid to the customer (support events with outcome 'resolved')",
            "journey_id": "<customer_id>-t<trip number>, trips numbered in time order from the window start",
        },
        "touchpoints": {tp: {"stage": STAGES[i], "planted_mean_valence": f(MEAN[i]),
                             "n_events": int(tp_means.get(tp, 0)), "rated_share": f(RATED[i])}
                        for i, tp in enumerate(TOUCHPOINTS)},  # fmt: skip
        "drivers": {
            "feature": "x_tp = the customer's mean latent valence at the touchpoint over the window; the term is "
                       "coef * (x_tp - centre_tp), and 0 when the customer never visited tp",
            "centre": {tp: f(MEAN[i]) for i, tp in enumerate(TOUCHPOINTS)},
            "retained": {tp: f(BETA[i]) for i, tp in enumerate(TOUCHPOINTS)},
            "spend_next_12m": {tp: f(GAMMA[i]) for i, tp in enumerate(TOUCHPOINTS)},
            "strong": [tp for i, tp in enumerate(TOUCHPOINTS) if BETA[i] >= 1.0],
            "moderate": [tp for i, tp in enumerate(TOUCHPOINTS) if 0 < BETA[i] < 1.0],
            "null": null,
            "mood_sd": MOOD_SD,
            "note": "mood lifts every touchpoint of a customer (so experiences correlate) and has no direct "
                    "effect; null touchpoints have zero direct effect on every outcome and are left out of memory",
        },
        "memory": {
            "model": memory, "weights": MEMORY_WEIGHTS[memory],
            "over": [TOUCHPOINTS[i] for i in DRIVERS],
            "journey": "peak_end: 0.5 * worst (min) + 0.5 * last latent valence among the journey's driver "
                       "moments; mean: their mean",
            "customer": "memory = mean over the customer's journeys",
            "retained_logit_weight": LOGIT["memory"],
            "nps": {"formula": "clip(rint(intercept + slope * memory + N(0, sd)), 0, 10)",
                    "intercept": latent.attrs["nps_intercept"], "slope": NPS_SLOPE, "sd": NPS_SD},
        },
        "pits": list(PITS), "peaks": list(PEAKS),
        "neutral": [tp for tp in TOUCHPOINTS if tp not in PITS + PEAKS],
        "recovery": {
            "crisis_rate": CRISIS_RATE, "crisis_mix": CRISIS_MIX, "crisis_valence": CRISIS_VALENCE,
            "p_recovered": P_RECOVERED, "recovered_valence": RECOVERED_VALENCE, "failed_valence": FAILED_VALENCE,
            "n_crisis_journeys": int(crisis_j.sum()), "crisis_journey_share": f(crisis_j.mean()),
            "n_recovered_journeys": int(sim["recovered"].sum()),
            "logit_effects": {"recovered": LOGIT["recovered"], "unrecovered": LOGIT["unrecovered"]},
            "groups": groups,
            "definition": "per customer: 'unrecovered' if any crisis ended in a failed support contact, "
                          "'recovered' if all their crises were resolved, else 'none'",
        },
        "retained": {"link": "logit", "intercept": latent.attrs["intercept"], "terms": LOGIT,
                     "target_mean": TARGET_RETENTION, "rate": f(ret.mean()),
                     "formula": "intercept + sum(drivers) + memory*M + recovered + unrecovered + business + "
                                "log1p_journeys*log1p(n) + tenth_flight_marked + one_year"},  # fmt: skip
        "segments": {
            "spend_model": {"formula": "retained * (1 + trip_rate) * fare_base[segment] * exp(happiness + N(0, sd))",
                            "happiness": "sum(spend drivers) + memory_weight * M", "memory_weight": SPEND_MEMORY,
                            "fare_base": FARE_BASE, "sd": SPEND_SD},  # fmt: skip
            "happiness_bands": bands,
            "band_on": "the customer's mean latent valence over all their events",
            "gain_middling_to_happy": f(gain_mid), "gain_unhappy_to_middling": f(gain_low),
            "segment_counts": {"business": int(sim["business"].sum()), "leisure": int((~sim["business"]).sum())},
        },
        "milestones": {
            "tenth_flight": {"n_customers": int(len(tenth)), "customer_ids": [str(cid[jcust[i]]) for i in tenth],
                             "journey_ids": [f"{cid[jcust[i]]}-t010" for i in tenth],
                             "n_marked": int(sim["marked"].sum()),
                             "marked_customer_ids": [str(cid[jcust[i]]) for i in tenth if sim["marked"][i]],
                             "marking": "attrs {'milestone': 'tenth_flight', 'marked': true} on the flight event, "
                                        f"valence +{MILESTONE_BUMP}", "logit_effect_marked": LOGIT["tenth_flight_marked"],
                             "logit_effect_unmarked": 0.0},  # fmt: skip
            "one_year": {"n_customers": int(one_year.sum()), "customer_ids": [str(c) for c in cid[one_year]],
                         "logit_effect": LOGIT["one_year"], "marked": False},  # fmt: skip
            "first_flight": {"n_customers": int(new.sum()), "customer_ids": [str(c) for c in cid[new]],
                             "journey_ids": [f"{c}-t001" for c in cid[new]], "logit_effect": 0.0,
                             "note": "customers who signed up inside the window: their first trip is a leap of faith"},
        },
        "star_employees": star_rows,
    }
