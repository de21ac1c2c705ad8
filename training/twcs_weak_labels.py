"""Label inbound customer tweets of ``twcs_head5000.csv`` from the brand's reply: the business's own "rating".

A support team's first reply says how the customer came across: an apology or empathy ("sorry", "apologies",
"frustrating", "not what we want") answers an unhappy customer; shared joy ("glad to hear", "love that",
"you're welcome", "enjoy") answers a happy one; a plain question or instruction ("please DM us your order
number") answers a neutral request. The rules below read only the brand's reply, never the customer's text,
so the label is independent evidence, like a star rating left beside a review. It is noisy (a brand
apologises for a delay the customer only asked about); tweets without a brand reply get no label. The tweets
hand-labelled for the benchmark (``bench/data/twcs_inbound_labels.csv``) are always excluded.

Used by ``bench/bench_text_eval.py`` (domain adaptation) as the stand-in for a business's rated feedback.
"""

from __future__ import annotations

import re

import corpora
import numpy as np
import pandas as pd

_NEG = re.compile(
    r"\b(sorry|apolog\w*|sincerest|regret|frustrat\w*|inconvenien\w*|disappoint\w*|unacceptable|concerning|"
    r"not what we (?:want|like)|not the experience|hate to hear|saddened|oh no|yikes|that's not good|"
    r"understand (?:how|your)|not ideal|never our intention|troubl\w+ to hear|not okay)\b",
    re.I,
)
_POS = re.compile(
    r"\b(glad to hear|glad (?:you|it|that|we)|happy to hear|great to hear|good to hear|love (?:that|this|to hear|it|you)|"
    r"you're (?:very )?welcome|you are welcome|my pleasure|our pleasure|enjoy|awesome|yay|woo+|"
    r"thanks for (?:the|your) (?:love|kind|support|shout|praise|compliment)|kind words|made our day|"
    r"right there with you|we appreciate you|congrat\w*|have fun|so happy)\b",
    re.I,
)
LABELS = ("negative", "neutral", "positive")


def reply_label(reply: str) -> str:
    neg, pos = bool(_NEG.search(reply)), bool(_POS.search(reply))
    if neg and not pos:
        return "negative"
    if pos and not neg:
        return "positive"
    return "neutral" if not (neg or pos) else "mixed"


def weak_labels() -> pd.DataFrame:
    """Inbound tweets with the label read from the brand's first reply: columns tweet_id, text, label, reply."""
    df = corpora.twcs()
    inbound = df[df["inbound"].astype(str) == "True"]
    replies = df[(df["inbound"].astype(str) != "True") & df["in_response_to_tweet_id"].notna()].copy()
    replies["parent"] = replies["in_response_to_tweet_id"].astype(float).astype(np.int64).astype(str)
    replies = replies.sort_values("tweet_id", key=lambda s: s.astype(np.int64)).drop_duplicates("parent")
    merged = inbound.merge(replies[["parent", "text"]], left_on="tweet_id", right_on="parent", suffixes=("", "_reply"))
    merged["label"] = merged["text_reply"].astype(str).map(reply_label)
    held_out = set(corpora.bench_labels()["tweet_id"])
    keep = merged[(merged["label"] != "mixed") & ~merged["tweet_id"].isin(held_out)]
    return keep.rename(columns={"text_reply": "reply"})[["tweet_id", "text", "label", "reply"]].reset_index(drop=True)


if __name__ == "__main__":
    wl = weak_labels()
    print(wl["label"].value_counts().to_string())
    bench = corpora.bench_labels()
    # how well the procedure agrees with the hand labels (on the bench tweets, which it must never train on)
    df = corpora.twcs()
    replies = df[(df["inbound"].astype(str) != "True") & df["in_response_to_tweet_id"].notna()].copy()
    replies["parent"] = replies["in_response_to_tweet_id"].astype(float).astype(np.int64).astype(str)
    m = bench.merge(replies.drop_duplicates("parent")[["parent", "text"]], left_on="tweet_id", right_on="parent", suffixes=("", "_reply"))
    m["weak"] = m["text_reply"].astype(str).map(reply_label)
    print(pd.crosstab(m["label"], m["weak"]))
