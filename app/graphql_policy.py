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

from app.errors import OperationNotAllowed, QueryTooDeep, QueryTooLarge


class _DepthCounter:
    """Selection depth with each fragment measured once: linear in the document, whatever its spreads."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.known: dict[str, int] = {}
        self.open: set[str] = set()

    def of(self, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        deepest = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                deepest = max(deepest, 1 + self.of(selection.selection_set))
            elif isinstance(selection, InlineFragmentNode):
                deepest = max(deepest, self.of(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                deepest = max(deepest, self.fragment(selection.name.value))
        return deepest

    def fragment(self, name: str) -> int:
        if name in self.known:
            return self.known[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.open:  # unknown or cyclic: the server's to reject
            return 0
        self.open.add(name)
        self.known[name] = self.of(definition.selection_set)
        self.open.discard(name)
        return self.known[name]


def document_depth(document: DocumentNode) -> int:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    counter = _DepthCounter(fragments)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return max((counter.of(op.selection_set) for op in operations), default=0)


# Only small documents are cached: a storefront's own are a few KB, and a cache keyed by long strings
# would let anyone pin memory.
_CACHEABLE = 8 * 1024
TOO_MANY_TOKENS = -1  # the depth `_inspect` reports for a document over the token cap


def inspect_document(query: str, *, max_tokens: int | None = None) -> tuple[str, int] | None:
    """(canonical sha256, depth) of a document, or None if it does not parse. Parsing stops after
    `max_tokens` tokens (depth `TOO_MANY_TOKENS`): the work is bounded before the document is read."""
    return _inspect_cached(query, max_tokens) if len(query) <= _CACHEABLE else _inspect(query, max_tokens)


def _inspect(query: str, max_tokens: int | None) -> tuple[str, int] | None:
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except GraphQLError as exc:
        if "nested too deeply" in exc.message:
            return hashlib.sha256(query.encode()).hexdigest(), sys.maxsize
        if "tokens" in exc.message and max_tokens is not None:  # "Document contains more than N tokens."
            return hashlib.sha256(query.encode()).hexdigest(), TOO_MANY_TOKENS
        return None
    except RecursionError:
        return hashlib.sha256(query.encode()).hexdigest(), sys.maxsize
    digest = hashlib.sha256(print_ast(document).encode()).hexdigest()
    try:
        return digest, document_depth(document)
    except RecursionError:
        # Fragments chained deeper than Python's stack: too deep by any measure.
        return digest, sys.maxsize


_inspect_cached = lru_cache(maxsize=2048)(_inspect)


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
    """Refuses documents off the allowlist (403), nested deeper than allowed or too large to inspect (400)."""

    def __init__(
        self, *, allowlist: frozenset[str] | None, max_depth: int, max_tokens: int, max_inspect_bytes: int
    ) -> None:
        self._allowlist = allowlist
        self._max_depth = max_depth
        self._max_tokens = max_tokens
        self._max_inspect_bytes = max_inspect_bytes

    @property
    def active(self) -> bool:
        return self._allowlist is not None or self._max_depth > 0

    def check(self, query: str) -> None:
        if len(query) > self._max_inspect_bytes:
            raise QueryTooLarge(f"The GraphQL document is over {self._max_inspect_bytes} characters.")
        inspected = inspect_document(query, max_tokens=self._max_tokens)
        if inspected is None:
            if self._allowlist is not None:
                raise OperationNotAllowed()
            return  # not ours to reject: Shopify answers syntax errors in GraphQL's own shape
        digest, depth = inspected
        if depth == TOO_MANY_TOKENS:
            raise QueryTooLarge(f"The GraphQL document has more than {self._max_tokens} tokens.")
        if self._allowlist is not None and digest not in self._allowlist:
            raise OperationNotAllowed()
        if self._max_depth and depth > self._max_depth:
            levels = "too deeply" if depth == sys.maxsize else f"{depth} levels"
            raise QueryTooDeep(f"The query nests {levels}; the limit is {self._max_depth}.")
