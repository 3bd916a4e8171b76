"""gateway.vectors.VectorIndex: the ANN index under the semantic cache and the vector stores."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gateway import vectors
from gateway.vectors import EXACT_LIMIT, VectorIndex

# The graph stores float16: its similarities are good to about 1e-3.
GRAPH = 2e-3


def _clustered(
    count: int, dimensions: int, *, clusters: int, seed: int, draw: int = 0
) -> np.ndarray:
    """Points scattered around a few centres (the same for one seed), like embeddings of related
    texts; another `draw` gives other points around the same centres."""
    centres = np.random.default_rng(seed).standard_normal((clusters, dimensions))
    centres = centres.astype(np.float32)
    rng = np.random.default_rng([seed, draw])
    points = centres[rng.integers(0, clusters, count)]
    points += 0.6 * rng.standard_normal((count, dimensions)).astype(np.float32)
    return points


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_an_empty_index_finds_nothing() -> None:
    index = VectorIndex(dimensions=4)
    assert len(index) == 0
    assert index.search([1.0, 0.0, 0.0, 0.0], k=5) == []
    assert 0 not in index


def test_the_nearest_label_comes_first_with_its_cosine_similarity() -> None:
    index = VectorIndex(dimensions=3)
    index.add(10, [1.0, 0.0, 0.0])
    index.add(20, [0.0, 2.0, 0.0])  # not unit length: cosine ignores the length
    index.add(30, [1.0, 1.0, 0.0])
    index.add(40, [-1.0, 0.0, 0.0])

    found = index.search([3.0, 0.0, 0.0], k=4)

    assert [label for label, _ in found] == [10, 30, 20, 40]
    assert [round(similarity, 5) for _, similarity in found] == [1.0, 0.70711, 0.0, -1.0]
    assert all(isinstance(label, int) for label, _ in found)


def test_k_larger_than_the_index_returns_every_label() -> None:
    index = VectorIndex(dimensions=2)
    index.add_many([1, 2], [[1.0, 0.0], [0.0, 1.0]])
    assert [label for label, _ in index.search([1.0, 0.1], k=10)] == [1, 2]


def test_adding_a_label_again_replaces_its_vector() -> None:
    index = VectorIndex(dimensions=3)
    index.add(7, [1.0, 0.0, 0.0])
    index.add(8, [0.0, 1.0, 0.0])
    index.add(7, [0.0, 0.0, 1.0])

    assert len(index) == 2
    assert index.search([0.0, 0.0, 1.0], k=1) == [(7, 1.0)]
    assert sorted(label for label, _ in index.search([1.0, 0.0, 0.0], k=5)) == [7, 8]


def test_add_many_with_a_label_twice_keeps_the_last_vector() -> None:
    index = VectorIndex(dimensions=2)
    index.add_many([5, 5], [[1.0, 0.0], [0.0, 1.0]])
    assert len(index) == 1
    assert index.search([0.0, 1.0]) == [(5, 1.0)]


def test_remove_forgets_a_label_and_ignores_an_absent_one() -> None:
    index = VectorIndex(dimensions=2)
    index.add_many([1, 2], [[1.0, 0.0], [0.0, 1.0]])

    index.remove(1)
    index.remove(1)
    index.remove(999)

    assert len(index) == 1
    assert 1 not in index
    assert 2 in index
    assert index.search([1.0, 0.0], k=5) == [(2, 0.0)]
    index.add(1, [1.0, 0.0])
    assert index.search([1.0, 0.0]) == [(1, 1.0)]


def test_the_index_grows_past_its_capacity() -> None:
    points = _clustered(500, 16, clusters=10, seed=1)
    index = VectorIndex(dimensions=16, capacity=8)
    for label, point in enumerate(points):
        index.add(label, point)

    assert len(index) == 500
    assert all(label in index for label in range(500))
    assert index.search(points[321], k=1)[0][0] == 321
    assert index.memory_bytes() > 0


def test_numpy_labels_and_vectors_are_accepted() -> None:
    index = VectorIndex(dimensions=3)
    index.add_many(np.array([3, 4], dtype=np.int64), np.eye(3, dtype=np.float64)[:2])
    assert np.uint64(3) in index
    assert index.search(np.array([0.0, 1.0, 0.0], dtype=np.float16)) == [(4, 1.0)]


@pytest.mark.parametrize(
    "vector",
    [
        [1.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [[1.0, 0.0, 0.0]],
        [0.0, 0.0, 0.0],
        [1.0, float("nan"), 0.0],
    ],
    ids=["too-short", "too-long", "a-matrix", "zero", "nan"],
)
def test_a_vector_of_the_wrong_shape_or_without_direction_is_a_value_error(vector: list) -> None:
    index = VectorIndex(dimensions=3)
    index.add(1, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        index.add(2, vector)
    with pytest.raises(ValueError):
        index.search(vector)
    assert len(index) == 1


@pytest.mark.parametrize("label", [-1, 2**64, "1", 1.5, True])
def test_a_label_must_be_an_unsigned_64_bit_integer(label: object) -> None:
    index = VectorIndex(dimensions=2)
    with pytest.raises(ValueError):
        index.add(label, [1.0, 0.0])  # type: ignore[arg-type]
    assert label not in index
    index.remove(label)  # type: ignore[arg-type]
    assert len(index) == 0


def test_labels_and_vectors_of_different_counts_are_a_value_error() -> None:
    index = VectorIndex(dimensions=2)
    with pytest.raises(ValueError):
        index.add_many([1, 2], [[1.0, 0.0]])
    with pytest.raises(ValueError):
        index.search([1.0, 0.0], k=0)
    with pytest.raises(ValueError):
        VectorIndex(dimensions=0)


def test_recall_on_a_clustered_set_matches_brute_force() -> None:
    points = _clustered(3000, 64, clusters=30, seed=2)
    queries = _clustered(200, 64, clusters=30, seed=2, draw=1)
    index = VectorIndex(dimensions=64)
    index.add_many(range(len(points)), points)

    exact = np.argsort(-(_unit(queries) @ _unit(points).T), axis=1)[:, :10]
    found_at_1 = found_at_10 = 0
    for query, truth in zip(queries, exact, strict=True):
        labels = [label for label, _ in index.search(query, k=10)]
        found_at_1 += labels[0] == truth[0]
        found_at_10 += len(set(labels) & set(truth.tolist()))

    assert found_at_1 / len(queries) >= 0.95
    assert found_at_10 / (10 * len(queries)) >= 0.95


def test_concurrent_adds_and_searches_from_threads_stay_consistent() -> None:
    # The writer takes the index from the exact store through the move into the graph while
    # the reader searches it.
    start, total = EXACT_LIMIT - 300, EXACT_LIMIT + 700
    points = _unit(_clustered(total, 32, clusters=20, seed=3))
    index = VectorIndex(dimensions=32, capacity=16)
    index.add_many(range(start), points[:start])
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for label in range(start, total):
                index.add(label, points[label])
        except BaseException as exc:  # a failure in the thread must fail the test
            errors.append(exc)

    def reader() -> None:
        try:
            for label in range(0, start, 4):
                assert index.search(points[label], k=1)[0][0] == label
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert index.kind == "hnsw"
    assert len(index) == total
    assert all(index.search(points[label])[0][0] == label for label in (0, start, total - 1))


def test_a_small_index_is_exact_and_moves_into_the_graph_as_it_grows() -> None:
    points = _clustered(EXACT_LIMIT + 400, 16, clusters=40, seed=4)
    index = VectorIndex(dimensions=16)
    for label in range(EXACT_LIMIT):
        index.add(label, points[label])
    assert index.kind == "exact"

    # Past the limit the graph fills a few vectors per add; meanwhile the exact store answers,
    # and removals and replacements reach both.
    index.add(EXACT_LIMIT, points[EXACT_LIMIT])
    assert index.kind == "migrating"
    index.remove(3)
    index.add(4, points[EXACT_LIMIT + 399])
    for label in range(EXACT_LIMIT + 1, EXACT_LIMIT + 399):
        index.add(label, points[label])

    assert index.kind == "hnsw"
    assert len(index) == EXACT_LIMIT + 398
    assert 3 not in index
    assert all(index.search(points[label])[0][0] == label for label in (0, 5, 1500, 2200))
    assert index.search(points[EXACT_LIMIT + 399])[0] == (4, pytest.approx(1.0, abs=GRAPH))
    assert index.search(points[3], k=3)[0][0] != 3


def test_a_large_batch_goes_straight_into_the_graph() -> None:
    points = _clustered(EXACT_LIMIT * 2, 16, clusters=40, seed=5)
    index = VectorIndex(dimensions=16)
    index.add_many(range(10), points[:10])
    index.add_many(range(len(points)), points)
    assert index.kind == "hnsw"
    assert len(index) == len(points)
    assert index.search(points[7], k=1)[0][0] == 7


def test_an_index_stays_exact_where_the_cpu_cannot_run_the_graphs_kernels(monkeypatch) -> None:
    # usearch picks kernels by CPUID; Linux's flags are what the OS really enabled.
    monkeypatch.setattr(vectors, "_cpu_flags", lambda: frozenset({"sse2"}))
    vectors._graph_ok.cache_clear()
    try:
        points = _clustered(EXACT_LIMIT + 100, 8, clusters=10, seed=6)
        index = VectorIndex(dimensions=8)
        index.add_many(range(len(points)), points)
        assert index.kind == "exact"
        assert len(index) == len(points)
        assert index.search(points[EXACT_LIMIT + 50])[0][0] == EXACT_LIMIT + 50
    finally:
        vectors._graph_ok.cache_clear()


@pytest.mark.parametrize("size", [100, EXACT_LIMIT * 3], ids=["exact", "hnsw"])
def test_search_among_given_labels_only(size: int) -> None:
    points = _unit(_clustered(size, 16, clusters=20, seed=7))
    index = VectorIndex(dimensions=16)
    index.add_many(range(size), points)
    query = points[10]
    scores = points @ query

    def best_of(allowed: list[int], k: int) -> list[int]:
        return sorted(allowed, key=lambda label: -scores[label])[:k]

    few = [1, 2, 3, 10, 50]
    assert [label for label, _ in index.search(query, k=3, labels=few)] == best_of(few, 3)
    odd = list(range(1, size, 2))  # half the index: the graph is asked for more neighbours
    found = [label for label, _ in index.search(query, k=5, labels=odd)]
    assert len(found) == 5
    assert set(found) <= set(odd)
    assert found[0] == best_of(odd, 1)[0]
    assert index.search(query, k=3, labels=[]) == []
    assert index.search(query, k=3, labels=[size + 5, -1]) == []
    similarities = [similarity for _, similarity in index.search(query, k=2, labels=[10, 11])]
    assert similarities[0] == pytest.approx(1.0, abs=GRAPH)
    assert similarities[1] == pytest.approx(float(scores[11]), abs=GRAPH)


def test_replace_and_remove_in_the_graph() -> None:
    points = _unit(_clustered(EXACT_LIMIT + 10, 16, clusters=20, seed=8))
    index = VectorIndex(dimensions=16)
    index.add_many(range(len(points)), points)
    assert index.kind == "hnsw"
    fresh = -points[0]

    index.add(1, fresh)
    index.remove(2)
    index.remove(2)
    index.remove(10**9)

    assert len(index) == len(points) - 1
    assert 2 not in index
    assert index.search(fresh)[0] == (1, pytest.approx(1.0, abs=GRAPH))
    assert 2 not in [label for label, _ in index.search(points[2], k=10)]


def test_migrate_all_moves_what_is_left_into_the_graph_at_once() -> None:
    """A rebuild adds batches smaller than what is stored, so the graph starts by migrating; its
    `migrate_all` (before the index is searched) leaves the whole index in the graph, each
    vector findable, with removals before it kept."""
    points = _clustered(EXACT_LIMIT + 2000, 16, clusters=40, seed=6)
    index = VectorIndex(dimensions=16)
    for start in range(0, len(points), 2000):
        index.add_many(range(start, min(start + 2000, len(points))), points[start : start + 2000])
    assert index.kind == "migrating"
    index.remove(11)
    index.migrate_all(threads=2)
    assert index.kind == "hnsw"
    assert len(index) == len(points) - 1
    assert 11 not in index
    assert all(index.search(points[label])[0][0] == label for label in (0, 7, 3000, 5000))
    index.migrate_all()  # nothing left: a no-op
    assert index.kind == "hnsw"


def test_a_batch_added_with_several_threads_is_searched_alike() -> None:
    points = _clustered(EXACT_LIMIT * 2, 16, clusters=40, seed=7)
    index = VectorIndex(dimensions=16)
    index.add_many(range(len(points)), points, threads=2)
    assert index.kind == "hnsw"
    assert all(index.search(points[label])[0][0] == label for label in (1, 99, 4095, 8000))
