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
    return text[start + len(ANSWER_OPEN) : end]


def last_boxed(text: str) -> str | None:
    start = text.rfind(BOXED)
    while start >= 0:
        depth, i = 1, start + len(BOXED)
        while i < len(text):
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[start + len(BOXED) : i]
            i += 1
        start = text.rfind(BOXED, 0, start)  # unbalanced: try an earlier one
    return None


def extract_answer(text: str) -> str | None:
    """The model's final answer, stripped, or None when it gave none."""
    if not isinstance(text, str):
        return None
    found = last_answer_block(text)
    if found is None:
        found = last_boxed(text)
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
        header_end = text.find("\n", start)
        if header_end < 0 or header_end > end:
            close = start
            continue
        header = text[start + 3 : header_end].strip().lower()
        if header in (language, ""):
            return text[header_end + 1 : end]
        close = start
