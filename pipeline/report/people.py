"""People: face embeddings of the ORIGINAL crops, and tracks grouped into person clusters.

Embeddings come from `mobilefacenet_128d.onnx` on camera pixels only — never on enhanced faces,
whose detail is invented. The saved 128×128 original crop (pipeline.stages.align's template) is re-warped
to the 112×112 ArcFace template the recogniser was trained on.

Grouping is average-linkage agglomerative clustering (scipy) over per-track mean embeddings with a
cosine threshold (`people.threshold`): two groups join only while their mean pairwise similarity is at
least the threshold, and never when two of their tracks were seen at the same time in the same source
(one person cannot be two faces in one frame). Every join is recorded with its similarity, and every track keeps the
similarity to its nearest track outside its group, so the report can show why tracks were — or
were not — put together. Nothing is merged silently.

At 10–20 px faces an embedding says little about identity: the report shows similarities as
hints for an analyst, not as identification, and tracks whose faces are that small need SMALL_FACE_MARGIN
more to join.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable, Iterable

import cv2
import numpy as np
from scipy import sparse
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from ..core.geometry import ARCFACE_112, TEMPLATE, similarity

# Faces under SMALL_FACE_PX (the median size of a track's embedded crops) need `people.threshold` +
# SMALL_FACE_MARGIN to join: at those sizes, two people seen in the same frame reach the plain threshold while
# the same person stays above the higher one (benchmarks/people-grouping).
SMALL_FACE_PX = 20.0
SMALL_FACE_MARGIN = 0.2


def crop112(original: np.ndarray, kps: np.ndarray | None = None) -> np.ndarray:
    """The 112×112 ArcFace-aligned face from a 128×128 original crop.

    With the observation's source keypoints, the crop's real landmark positions are recomputed
    (the runner's similarity is deterministic), so the result equals `norm_crop` on the source up
    to resampling; without them the canonical TEMPLATE is assumed.
    """
    if kps is not None:
        k = np.asarray(kps, np.float64).reshape(5, 2)
        m = similarity(k)
        pts = (np.c_[k, np.ones(5)] @ m.T).astype(np.float32)
    else:
        pts = TEMPLATE
    s = similarity(pts, ARCFACE_112)
    return cv2.warpAffine(original, s, (112, 112), flags=cv2.INTER_LINEAR, borderValue=0.0)


class Embedder:
    """MobileFaceNet 128-D embeddings (L2-normalised) of 112×112 BGR aligned faces, on `device` with
    `threads` CPU threads (0: ONNX Runtime's choice), by ONNX Runtime or torch (`runtime`, as
    `devices.graph_runtime` picks); `choice` says which provider ran it and why."""

    def __init__(self, model: str | Path, threads: int = 1, device: str = "auto", runtime: str = "auto") -> None:
        from ..core.devices import pick_runtime, session

        self.path = Path(model)
        self.net = None  # torch's graph, where ONNX Runtime cannot reach the GPU (people.runtime)
        torch_choice = pick_runtime(runtime, device, "people embedder")
        if torch_choice is not None:
            from ..core.onnx_torch import TorchGraph

            self.net, self.choice = TorchGraph.load(model).eval().to(torch_choice.torch_device), torch_choice
        else:
            self.session, self.choice = session(model, device, threads, what="people embedder")
            self.input = self.session.get_inputs()[0].name

    def __call__(self, faces112: list[np.ndarray], batch: int = 32) -> np.ndarray:
        if not faces112:
            return np.zeros((0, 128), np.float32)
        out = []
        for i in range(0, len(faces112), batch):
            x = np.stack(faces112[i : i + batch]).astype(np.float32)  # BGR, as the model expects
            x = np.ascontiguousarray(((x - 127.5) / 127.5).transpose(0, 3, 1, 2))
            out.append(self._run(x))
        e = np.concatenate(out).astype(np.float32)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.net is None:
            return self.session.run(None, {self.input: x})[0]
        import torch

        with torch.inference_mode():
            (e,) = self.net(torch.from_numpy(x).to(self.net.device))
        return e.float().cpu().numpy()


def mean_embedding(embs: np.ndarray, weights: Iterable[float] | None = None) -> np.ndarray | None:
    """The normalised (optionally weighted) mean of unit embeddings; None for none."""
    if len(embs) == 0:
        return None
    w = np.ones(len(embs)) if weights is None else np.asarray(list(weights), np.float64)
    m = (np.asarray(embs, np.float64) * w[:, None]).sum(0)
    n = np.linalg.norm(m)
    return (m / n).astype(np.float32) if n > 0 else None


@dataclass
class Merge:
    """Two groups joined at `similarity` (mean pairwise cosine of their tracks), which had to reach `needed`
    (the threshold, plus SMALL_FACE_MARGIN for the pairs with a track of small faces, averaged)."""

    left: list[Hashable]
    right: list[Hashable]
    similarity: float
    needed: float


@dataclass
class Person:
    members: list[Hashable]
    merges: list[Merge] = field(default_factory=list)


@dataclass
class Clustering:
    people: list[Person]
    threshold: float
    nearest_outside: dict[Hashable, tuple[Hashable, float] | None]  # per track: closest track in another person
    apart: set[frozenset] = field(default_factory=set)  # pairs seen in one frame: never one person
    # per person (index into people): the closest other person by average linkage, whether some of their
    # tracks share a frame (then they can never be joined), and the similarity a join needed:
    # (index, similarity, apart, needed)
    nearest_person: list[tuple[int, float, bool, float] | None] = field(default_factory=list)


def cluster(embeddings: dict[Hashable, np.ndarray | None], threshold: float,
            cannot_link: Iterable[tuple[Hashable, Hashable]] = (), small: Iterable[Hashable] = ()) -> Clustering:
    """Average-linkage grouping of track embeddings; tracks without an embedding stay alone.

    The order of `embeddings` decides the order of people (first member) and of members. scipy builds
    the average-linkage tree on cosine distances; a cannot-link pair is given a distance no average can
    bring below any cut, so a group holding it never forms, and the tree is cut where the next join's
    mean similarity falls below the mean similarity it needs: `threshold`, plus SMALL_FACE_MARGIN for each
    pair with a track in `small` (faces under SMALL_FACE_PX). O(n²) memory and time, in C.
    """
    keys = list(embeddings)
    have = [k for k in keys if embeddings[k] is not None]
    idx = {k: i for i, k in enumerate(have)}
    n = len(have)
    E = np.stack([embeddings[k] for k in have]).astype(np.float64) if n else np.zeros((0, 1))
    S = E @ E.T
    small = set(small)
    is_small = np.array([k in small for k in have], bool)
    need = threshold + SMALL_FACE_MARGIN * (is_small[:, None] | is_small[None, :])
    S_eff = S - (need - threshold)  # a join needs mean(S) >= mean(need), i.e. mean(S_eff) >= threshold
    cannot_link = list(cannot_link)
    linked = [(idx[a], idx[b]) for a, b in cannot_link if a in idx and b in idx and a != b]
    forbid = sparse.coo_matrix((np.ones(2 * len(linked)), ([a for a, b in linked] + [b for a, b in linked],
                                                           [b for a, b in linked] + [a for a, b in linked])),
                               shape=(n, n)).tocsr()

    # Groups as they join: members (indices, sorted) and the joins that made them, by tree node id.
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    merges: dict[int, list[Merge]] = {i: [] for i in range(n)}
    if n > 1:
        D = 1.0 - S_eff
        apart_d = 4.0 * n * n + 4.0  # > 2 even averaged over the largest pair of groups: never joined
        D[forbid.nonzero()] = apart_d
        np.fill_diagonal(D, 0.0)
        tree = hierarchy.linkage(squareform(D, checks=False), method="average")
        for row, (a, b, dist, _) in enumerate(tree):
            left, right = sorted((int(a), int(b)), key=lambda g: members[g][0])
            A, B = members[left], members[right]
            similarity = float(S[np.ix_(A, B)].mean())
            needed = float(need[np.ix_(A, B)].mean())
            if dist > 2.0 or not float(S_eff[np.ix_(A, B)].mean()) >= threshold:
                break  # the tree joins in increasing distance: every later join is further apart
            node = n + row
            merges[node] = merges.pop(left) + merges.pop(right) + [
                Merge([have[k] for k in A], [have[k] for k in B], round(similarity, 4), round(needed, 4))]
            members[node] = sorted(members.pop(left) + members.pop(right))

    order = {k: m for m, k in enumerate(keys)}
    people = [Person([have[k] for k in members[g]], merges[g]) for g in members]
    people += [Person([k]) for k in keys if embeddings[k] is None]
    for p in people:
        p.members.sort(key=order.__getitem__)
    people.sort(key=lambda p: order[p.members[0]])

    # Nearest track in another person, and nearest other person by average linkage.
    owner = np.full(n, -1)
    for pi, p in enumerate(people):
        for k in p.members:
            if k in idx:
                owner[idx[k]] = pi
    nearest: dict[Hashable, tuple[Hashable, float] | None] = {k: None for k in keys}
    if n > 1:
        masked = np.where(owner[:, None] != owner[None, :], S, -np.inf)
        cols = masked.argmax(1)
        for r, c in enumerate(cols):
            if np.isfinite(masked[r, c]):
                nearest[have[r]] = (have[c], round(float(S[r, c]), 4))
    return Clustering(people, float(threshold), nearest, {frozenset((a, b)) for a, b in cannot_link},
                      _nearest_people(S, need, forbid, owner, len(people)))


def _nearest_people(S: np.ndarray, need: np.ndarray, forbid: sparse.csr_matrix, owner: np.ndarray,
                    n_people: int) -> list[tuple[int, float, bool, float] | None]:
    """Per person: the closest other person by mean similarity (ties: the later one), whether some of
    their tracks share a frame, and the mean similarity a join would need."""
    n = len(owner)
    if not n_people:
        return []
    onehot = sparse.csr_matrix((np.ones(n), (np.arange(n), owner)), shape=(n, n_people))
    cnt = np.asarray(onehot.sum(0)).ravel()
    link = np.asarray((onehot.T @ S) @ onehot) / np.maximum(np.outer(cnt, cnt), 1)
    needs = np.asarray((onehot.T @ need) @ onehot) / np.maximum(np.outer(cnt, cnt), 1)
    apart = np.asarray((onehot.T @ forbid @ onehot).todense()) > 0
    valid = (cnt > 0)[:, None] & (cnt > 0)[None, :] & ~np.eye(n_people, dtype=bool)
    rounded = np.where(valid, np.round(link, 4), -np.inf)
    best = rounded.max(1, initial=-np.inf)
    later = n_people - 1 - np.argmax((rounded == best[:, None])[:, ::-1], axis=1)  # max of (similarity, q)
    return [(int(q), round(float(link[p, q]), 4), bool(apart[p, q]), round(float(needs[p, q]), 4))
            if np.isfinite(best[p]) else None for p, q in enumerate(later)]


def cooccurring(frames: dict[Hashable, tuple[Hashable, set[int]]]) -> list[tuple[Hashable, Hashable]]:
    """Pairs of tracks seen in the same frame of the same source: two faces at once, never one person."""
    at: dict[tuple[Hashable, int], list[Hashable]] = {}
    for k, (source, fs) in frames.items():
        for f in fs:
            at.setdefault((source, f), []).append(k)
    pairs: dict[frozenset, tuple[Hashable, Hashable]] = {}
    for ks in at.values():
        for i, a in enumerate(ks):
            for b in ks[i + 1 :]:
                pairs.setdefault(frozenset((a, b)), (a, b))
    return list(pairs.values())
