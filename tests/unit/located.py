"""The one shape every user-facing D error must have: where, what, and a caret."""

from __future__ import annotations


def assert_located(err, source: str, where: str, message: str) -> None:
    assert err.span is not None, str(err)
    assert f"{err.span.line}:{err.span.col}" == where, str(err)
    assert message in err.message, str(err)
    rendered = err.render(source)
    assert f"{where}: " in rendered and "^" in rendered
