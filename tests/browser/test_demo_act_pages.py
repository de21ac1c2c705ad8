"""The Act pages of the store `keymoments demo` leaves, in a real browser: the playbook library ran live over
the second half of the history, so a newcomer sees live cases, money spent from the budgets, and each measured
playbook's uplift with its 95% interval."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CI = re.compile(r"^\[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]$")


def test_playbooks_page_shows_the_live_run_and_uplift_with_its_interval(demo_signed_in):
    s = demo_signed_in("analyst")
    s.open("/playbooks")
    assert "Live run: live-" in s.page.locator("#live-run").inner_text()
    s.charts()  # the uplift chart with its error bars
    row = s.page.locator("tr[data-playbook='service-recovery']")
    assert int(row.locator("td.fired").inner_text().replace(",", "")) > 0
    assert float(row.locator("td.spent").inner_text().replace(",", "")) > 0
    intervals = [t.strip() for t in s.page.locator("td.ci").all_inner_texts()]
    assert len(intervals) >= 5 and all(CI.match(t) for t in intervals), intervals
    assert re.match(r"^[+-]\d\.\d{3}$", row.locator("td.uplift").inner_text().strip())
    # help is never withheld to measure it: no holdout, no uplift, and the page says why
    care = s.page.locator("tr[data-playbook='vulnerable-customer-assistance'] td.refused").inner_text()
    assert "no holdout" in care
    s.shot("20-demo-playbooks")


def test_cases_page_shows_the_live_cases(demo_signed_in):
    s = demo_signed_in("admin")
    s.open("/cases")
    assert s.page.locator("a.case-link").count() > 10
    s.shot("21-demo-cases")


def test_budgets_page_shows_money_spent(demo_signed_in):
    s = demo_signed_in("admin")
    s.open("/budgets")
    spent = [float(m.group(1).replace(",", "")) for t in s.page.locator(".kpi .kpi-note").all_inner_texts()
             if (m := re.search(r"spent ([\d,.]+)", t))]  # fmt: skip
    assert spent and max(spent) > 0, spent
    assert s.page.locator("table.data").count() >= 2
    s.shot("22-demo-budgets")
