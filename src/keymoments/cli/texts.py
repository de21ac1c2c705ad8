"""CLI commands: ``keymoments texts [list] | tag ID TOUCHPOINT``: the texts the tagger gave a touchpoint, least
certain first, and correcting one (the tagger refits and re-tags the store's texts at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from keymoments.cli.common import (
    DbOption,
    JsonOption,
    TagJourneyOption,
    console,
    echo_json,
    open_store,
    print_table,
)

__all__ = ["register"]

app = typer.Typer(
    name="texts",
    help="Tagged texts, least certain first (`texts list`), and correcting a tag (`texts tag ID TOUCHPOINT`): the "
    "tagger learns from each correction at once.",
    invoke_without_command=True,
)
_DEFAULT_DB = Path("keymoments.duckdb")
OrderOption = Annotated[
    str, typer.Option("--order", help="uncertain (least certain first: correct these first), confident or recent.")
]


UncertainOption = Annotated[bool, typer.Option("--uncertain", help="Least certain first (the default order).")]
TagOption = Annotated[str | None, typer.Option("--tag", help="Only texts with this tag.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=100_000, help="How many texts.")]
OffsetOption = Annotated[int, typer.Option("--offset", min=0, help="Skip this many first.")]


@app.callback()
def texts(
    ctx: typer.Context, db: DbOption = _DEFAULT_DB, json_out: JsonOption = False, uncertain: UncertainOption = False,
    order: OrderOption = "uncertain", tag: TagOption = None, limit: LimitOption = 20, offset: OffsetOption = 0,
) -> None:  # fmt: skip
    """Tagged texts and their corrections; without a subcommand, `texts list` (with the same options)."""
    if ctx.invoked_subcommand is None:
        list_(db=db, json_out=json_out, uncertain=uncertain, order=order, tag=tag, limit=limit, offset=offset)


@app.command("list")
def list_(
    db: DbOption = _DEFAULT_DB,
    json_out: JsonOption = False,
    uncertain: UncertainOption = False,
    order: OrderOption = "uncertain",
    tag: TagOption = None,
    limit: LimitOption = 20,
    offset: OffsetOption = 0,
) -> None:
    """List the texts the tagger gave a touchpoint: id (an event carrying the text), tag, confidence."""
    from keymoments.score.corrections import list_texts

    with open_store(db, read_only=True) as store:
        page = list_texts(store, tag=tag, order="uncertain" if uncertain else order, limit=limit, offset=offset)
    if json_out:
        echo_json(page)
        return
    console.print(f"{page['total']:,} tagged texts, {page['corrections']} corrected; tags: {', '.join(page['touchpoints']) or '-'}")
    if page["unlisted"]:
        from keymoments.score.corrections import UNLISTED_HINT

        console.print(f"{page['unlisted']:,} more tagged texts ({page['unlisted_events']:,} events) are not listed: "
                      f"tagged by the word-list tagger or before this version; {UNLISTED_HINT}.")  # fmt: skip
    if page["texts"]:
        frame = pd.DataFrame(page["texts"])[["id", "touchpoint", "confidence", "next_touchpoint", "next_confidence",
                                             "corrected", "events", "text"]]  # fmt: skip
        frame["text"] = frame["text"].str.slice(0, 70)
        print_table(frame)


@app.command("tag")
def tag(
    text_id: Annotated[str, typer.Argument(help="The text's id (from `texts list`).")],
    touchpoint: Annotated[str, typer.Argument(help="The touchpoint it is about (or 'other').")],
    db: DbOption = _DEFAULT_DB,
    json_out: JsonOption = False,
) -> None:
    """Correct a text's tag: stored with who and when, and the tagger refits and re-tags every text at once."""
    import getpass

    from keymoments.score.corrections import correct

    with open_store(db) as store:
        done = correct(store, text_id, touchpoint, actor=f"cli:{getpass.getuser()}")
    if json_out:
        echo_json(done)
        return
    r = done["refit"]
    console.print(f"{text_id}: tagged {done['text']['touchpoint']}. Refitted on {r['corrections']} corrections in "
                  f"{r['seconds']:.3f} s: {r['changed']} of {r['texts']:,} texts changed tag ({r['others_now_this_tag']} "
                  f"others now {done['text']['touchpoint']}), {r['events_moved']} events moved.")  # fmt: skip


@app.command("backfill")
def backfill(db: DbOption = _DEFAULT_DB, journey: TagJourneyOption = None, json_out: JsonOption = False) -> None:
    """Encode the tagged texts that are not listed (tagged by the word-list tagger or before this version), so
    they can be corrected and learnt from; they take the semantic tagger's tag (with the corrections so far)."""
    from keymoments.events import JourneyModel
    from keymoments.score.store import backfill_texts

    with open_store(db) as store:
        done = backfill_texts(store, JourneyModel.from_yaml(journey) if journey is not None else None)
    if json_out:
        echo_json({"added": done is not None, "refit": None if done is None else {
            "texts": done.texts, "changed": done.changed, "events_moved": done.events_moved, "corrections": done.corrections}})  # fmt: skip
        return
    if done is None:
        console.print("Every tagged text is listed already.")
        return
    console.print(f"{done.texts:,} texts listed now; {done.changed:,} changed tag, {done.events_moved:,} events moved "
                  f"(refitted on {done.corrections} corrections).")  # fmt: skip


def register(main: typer.Typer) -> None:
    """Add the ``texts`` sub-app to the main app."""
    main.add_typer(app, name="texts")
