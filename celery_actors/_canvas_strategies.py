"""hypothesis strategies that build random nested canvases from a user's signatures.

Imported by :func:`celery_actors.testing.canvases` only when used, so that hypothesis
stays a test dependency.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ._canvas import Canvas, Chain, Chord, Chunks, Fanout, Group, Signature

__all__ = ["canvases"]

_KINDS = ("signature", "chain", "group", "chord", "map", "chunks")


def canvases(
    sources: st.SearchStrategy[Signature],
    steps: st.SearchStrategy[Signature],
    *,
    joins: st.SearchStrategy[Signature] | None = None,
    handlers: st.SearchStrategy[Signature] | None = None,
    items: st.SearchStrategy[Any] | None = None,
    max_depth: int = 4,
    max_members: int = 4,
    min_fanout: int = 0,
    max_fanout: int = 30,
) -> st.SearchStrategy[Canvas]:
    """Random canvases, nested up to ``max_depth`` levels, of chains, groups, chords,
    maps (:class:`Fanout`) and chunks, with error handlers here and there.

    Args:
        sources: signatures that run with no input (where nothing comes before them:
            the first step of a workflow started with no arguments).
        steps: signatures that take an input as their first argument (the result of the
            step before in a chain, or a map's item).
        joins: signatures that take a list (a chord's body, the step after a group);
            ``steps`` if not given.
        handlers: error handlers, which take a :class:`TaskError` first; none if not given.
        items: the items of maps and chunks (integers by default).
        max_members: members of a group or chord header, steps of a chain.
        min_fanout, max_fanout: items of a map or chunks (raise ``min_fanout`` for
            large workflows: hypothesis favours small examples).
    """
    joins = joins if joins is not None else steps
    items = items if items is not None else st.integers(-100, 100)

    @st.composite
    def tree(draw: st.DrawFn, with_input: bool, depth: int) -> Canvas:
        leaf = steps if with_input else sources
        kind = "signature" if depth <= 0 else draw(st.sampled_from(_KINDS))
        node: Canvas
        if kind == "signature":
            node = draw(leaf)
        elif kind == "chain":
            first = draw(tree(with_input, depth - 1))
            rest = draw(st.lists(tree(True, depth - 1), min_size=1, max_size=max_members - 1))
            node = Chain(steps=[first, *rest])
        elif kind == "group":
            members = draw(st.lists(tree(with_input, depth - 1), max_size=max_members))
            node = Group(members=members)
        elif kind == "chord":
            header = draw(
                st.one_of(
                    st.lists(tree(with_input, depth - 1), max_size=max_members).map(
                        lambda members: Group(members=members)
                    ),
                    st.builds(
                        lambda template, found: Fanout(
                            template=template, arguments=[[item] for item in found]
                        ),
                        steps,
                        st.lists(items, min_size=min_fanout, max_size=max_fanout),
                    ),
                )
            )
            body: Canvas = draw(joins)
            if draw(st.booleans()):
                body = Chain(steps=[body, draw(tree(True, depth - 1))])
            node = Chord(header=header, body=body)
        elif kind == "map":
            template = draw(steps)
            found = draw(st.lists(items, min_size=min_fanout, max_size=max_fanout))
            node = Fanout(template=template, arguments=[[item] for item in found])
        else:
            template = draw(steps)
            found = draw(st.lists(items, min_size=min_fanout, max_size=max_fanout))
            size = draw(st.integers(1, 10))
            node = Chunks(template=template, items=[[item] for item in found], size=size)
        if handlers is not None and draw(st.integers(0, 4)) == 0:
            node = node.on_error(draw(handlers))
        return node

    return tree(False, max_depth)
