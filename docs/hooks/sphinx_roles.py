"""A griffe extension for the API reference: Sphinx roles in docstrings become code.

sockfake's docstrings cross-reference with ``:func:`name``` and friends; mkdocstrings
renders Markdown, where the role would show as text. This turns each role into an
inline code span (``:class:`~sockfake.testing.Testbed``` becomes ``Testbed``), so the
docstrings stay as they are for readers of the source.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    target = match.group(2)
    if match.group(1):  # "~a.b.C" shows as "C", as in Sphinx
        target = target.rsplit(".", 1)[-1]
    return f"``{target}``"


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_code, obj.docstring.value)
