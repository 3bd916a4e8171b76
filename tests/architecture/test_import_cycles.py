"""No import cycle among Ogem's modules, counted the way docs/architecture.md says.

import-linter's contracts (`lint-imports`, run by CI) keep the layers one-way and the siblings of
each package acyclic; a cycle between a package and one of its own modules is neither, so this
test looks at the whole graph: every module, imports inside functions and under TYPE_CHECKING
included, and asserts that no strongly connected component holds more than one module.
"""

from __future__ import annotations

import grimp

PACKAGES = ("ogem_site", "gateway", "billing", "keys", "tenants", "providers")


# Imports another change removes, ignored here as in pyproject.toml's contracts until it lands.
def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_import_cycles_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "a.b", "a.c", "d"):
        graph.add_module(module)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a")
    graph.add_import(importer="a", imported="a.b")
    graph.add_import(importer="d", imported="a")
    assert import_cycles(graph) == [["a", "a.b", "a.c"]]


def test_no_import_cycle_among_ogem_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert import_cycles(graph) == []
