"""The English check behind NotEnglishWarning: real texts of several languages, and the warning's threshold."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.exceptions import NotEnglishWarning
from keymoments.score.language import SAMPLE, english_flags, warn_if_not_english

# real customer tweets (Kaggle "Customer Support on Twitter", twcs_head5000.csv), as published
ENGLISH = [
    "@sprintcare I have sent several private messages and no one is responding as usual",
    "@AskPlayStation @115743 Can I get help already??",
    "@Uber_Support I’m not getting your texts. https://t.co/GhefNjQTfg",
    "@marksandspencer Raw meat!!!! It’s does not say unwrapped raw meat!!!",
    "After update #ios1103 no spotify on my lock screen?@AppleSupport",
]
NOT_ENGLISH = [
    "@115825 also, beim Addams Family-Film in Prime sind Bild und Ton nicht wirklich synchron. Wie kommt's?",
    "@116216 he platinado Horizon Zero Dawn el 1/7/2017 y no he recibido el tema exclusivo vía mail. ¿podrían revisar?",
    "@116926 ¡Hola! Lamentamos cualquier molestia ocasionada, ¿puedes contarnos lo sucedido? ^LC",
    "@117085 Olá, H.o! No momento não temos previsão, mas qualquer novidade será anunciada diretamente no nosso site",
    "@AmazonHelp 電話で対応してもらいましたが改良されませんでした。\n保証期間も過ぎてるので買い直しになるんでしょうね。",
    "Ach schau an. Meine Bestellung war unzustellbar... @AmazonHelp, was ist da denn passiert?",
]
TOO_SHORT = ["ok", "Thanks!", "👍👍", None, "", "Delish! Well played. -Becky"]


def test_real_texts_are_told_apart():
    assert english_flags(ENGLISH).tolist() == [1.0] * len(ENGLISH)
    assert english_flags(NOT_ENGLISH).tolist() == [0.0] * len(NOT_ENGLISH)
    assert np.isnan(english_flags(TOO_SHORT)).all()


def test_stop_word_stripped_english_is_not_called_foreign():
    # the TripAdvisor hotel reviews are published lower-cased with most function words gone
    flags = english_flags(["nice hotel expensive parking got good deal stay hotel anniversary arrived late evening"])
    assert flags[0] != 0.0


def test_warns_with_the_share_and_an_example():
    with pytest.warns(NotEnglishWarning, match=r"50% of the texts .* do not look English .*'semantic-x' reads English only"):
        share = warn_if_not_english(ENGLISH[:4] + NOT_ENGLISH[:4] + TOO_SHORT, "semantic-x")
    assert share == pytest.approx(0.5)


def test_silent_on_english_and_on_texts_too_short_to_tell():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_not_english(ENGLISH * 30 + NOT_ENGLISH[:1], "m") < 0.05
        assert warn_if_not_english(TOO_SHORT, "m") == 0.0
        assert warn_if_not_english([], "m") == 0.0


def test_a_large_call_checks_an_even_sample():
    texts = (ENGLISH + NOT_ENGLISH) * 200
    assert len(texts) > SAMPLE
    with pytest.warns(NotEnglishWarning, match="in an even sample"):
        warn_if_not_english(texts, "m")


def test_the_scorers_warn():
    from keymoments.score.lexicon import LexiconScorer

    with pytest.warns(NotEnglishWarning, match="lexicon-vader"):
        LexiconScorer().score(iter(NOT_ENGLISH))  # any iterable, read once


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=300)), max_size=20))
def test_any_input_gives_a_flag_and_never_fails(texts):
    flags = english_flags(texts)
    assert flags.shape == (len(texts),)
    assert set(np.unique(flags[~np.isnan(flags)])) <= {0.0, 1.0}
