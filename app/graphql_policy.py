"""What GraphQL the BFF forwards: an optional allowlist of document hashes, and a maximum depth.

Documents are hashed in graphql-core's canonical printed form, so whitespace, comments and formatting
do not change the hash; `python -m app allowlist FILES...` builds the list from a front end's
`.graphql` files. Parsing is cached by document text: a storefront sends the same few documents all day.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    print_ast,
)

from app.errors import BFFError


def _depth(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode], seen: frozenset[str]
) -> int:
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            deepest = max(deepest, 1 + _depth(selection.selection_set, fragments, seen))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(selection.selection_set, fragments, seen))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:  # cycles are the server's to reject
                deepest = max(deepest, _depth(fragment.selection_set, fragments, seen | {name}))
    return deepest


def document_depth(document: DocumentNode) -> int:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return max((_depth(op.selection_set, fragments, frozenset()) for op in operations), default=0)


@lru_cache(maxsize=4096)
def inspect_document(query: str) -> tuple[str, int] | None:
    """(canonical sha256, depth) of a document, or None if it does not parse."""
    try:
        document = parse(query, no_location=True)
    except GraphQLError:
        return None
    digest = hashlib.sha256(print_ast(document).encode()).hexdigest()
    try:
        return digest, document_depth(document)
    except RecursionError:
        # Fragments chained deeper than Python's stack: too deep by any measure.
        return digest, sys.maxsize


def build_allowlist(paths: Iterable[Path]) -> dict[str, object]:
    """The allowlist file's content for these `.graphql` files; refuses a file that does not parse."""
    operations: dict[str, str] = {}
    for path in sorted(paths):
        inspected = inspect_document(path.read_text())
        if inspected is None:
            raise ValueError(f"{path} is not a valid GraphQL document")
        operations[inspected[0]] = path.name
    return {"version": 1, "algorithm": "sha256(print_ast(parse(document)))", "operations": operations}


def load_allowlist(path: str) -> frozenset[str]:
    data = json.loads(Path(path).read_text())
    operations = data.get("operations") if isinstance(data, dict) else None
    if not isinstance(operations, dict):
        raise ValueError(f"{path} is not an allowlist file (build one with `python -m app allowlist`)")
    return frozenset(operations)


class GraphQLPolicy:
    """Refuses documents off the allowlist (403) or nested deeper than allowed (400)."""

    def __init__(self, *, allowlist: frozenset[str] | None, max_depth: int) -> None:
        self._allowlist = allowlist
        self._max_depth = max_depth

    @property
    def active(self) -> bool:
        return self._allowlist is not None or self._max_depth > 0

    def check(self, query: str) -> None:
        inspected = inspect_document(query)
        if inspected is None:
            if self._allowlist is not None:
                raise BFFError(403, "operation_not_allowed", "This GraphQL document is not on the allowlist.")
            return  # not ours to reject: Shopify answers syntax errors in GraphQL's own shape
        digest, depth = inspected
        if self._allowlist is not None and digest not in self._allowlist:
            raise BFFError(403, "operation_not_allowed", "This GraphQL document is not on the allowlist.")
        if self._max_depth and depth > self._max_depth:
            raise BFFError(400, "query_too_deep", f"The query nests {depth} levels; the limit is {self._max_depth}.")
