"""Answer extraction: the last <answer>...</answer> block, else the last \\boxed{...}.

Linear-time scans from the end (no regex backtracking on hostile input); a family's strict parser runs next.
"""

from __future__ import annotations

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
BOXED = "\\boxed{"


def last_answer_block(text: str) -> str | None:
    end = text.rfind(ANSWER_CLOSE)
    if end < 0:
        return None
    start = text.rfind(ANSWER_OPEN, 0, end)
    if start < 0:
        return None
    # Nested tags: the innermost block that closes, i.e. the first close after the last open.
    start += len(ANSWER_OPEN)
    return text[start : text.find(ANSWER_CLOSE, start)]


def last_boxed(text: str) -> str | None:
    """The balanced \\boxed{...} that closes last (the outer one when boxes nest); one pass, O(n)."""
    first = text.find(BOXED)
    if first < 0:
        return None
    boxed_braces = set()
    pos = first
    while pos >= 0:
        boxed_braces.add(pos + len(BOXED) - 1)
        pos = text.find(BOXED, pos + 1)
    best: tuple[int, int] | None = None
    stack: list[int] = []
    for i in range(first, len(text)):
        c = text[i]
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            opened = stack.pop()
            if opened in boxed_braces:
                best = (opened + 1, i)
    return None if best is None else text[best[0] : best[1]]


def extract_answer(text: str) -> str | None:
    """The model's final answer, stripped, or None when it gave none.

    An answer block that is a box is unwrapped (`<answer>\\boxed{42}</answer>` reads `42`): prompts that
    ask for a box meet models that also wrap it in the tag, and every family reading boxes comes here."""
    if not isinstance(text, str):
        return None
    found = last_answer_block(text)
    if found is None:
        found = last_boxed(text)
    elif found.lstrip().startswith(BOXED):
        # Only a block that is a box: a JSON or code answer may hold the text "\\boxed{" in a string.
        boxed = last_boxed(found)
        if boxed is not None:
            found = boxed
    return None if found is None else found.strip()


def extract_fenced(text: str, language: str) -> str | None:
    """The last ```language fenced block (used by code and SQL families), else None."""
    if not isinstance(text, str):
        return None
    close = len(text)
    while True:
        end = text.rfind("```", 0, close)
        if end < 0:
            return None
        start = text.rfind("```", 0, end)
        if start < 0:
            return None
        header_end = text.find("\n", start, end)  # bounded: linear even with many fences
        if header_end < 0:
            close = start
            continue
        header = text[start + 3 : header_end].strip().lower()
        if header in (language, ""):
            return text[header_end + 1 : end]
        close = start


def extract_block(text: str, language: str) -> str | None:
    """Code a model wrote: the last ```language block, else the final answer (a fence inside it unwrapped).

    Used by the code and SQL families; None when there is nothing but whitespace.
    """
    if not isinstance(text, str):
        return None
    found = extract_fenced(text, language)
    if found is None:
        answer = extract_answer(text)
        found = None if answer is None else (extract_fenced(answer, language) or answer)
    return found if found and found.strip() else None
