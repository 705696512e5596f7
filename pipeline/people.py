"""People: face embeddings of the ORIGINAL crops, and tracks grouped into person clusters.

Embeddings come from `mobilefacenet_128d.onnx` on camera pixels only — never on enhanced faces,
whose detail is invented. The saved 128×128 original crop (pipeline.align's template) is re-warped
to the 112×112 ArcFace template the recogniser was trained on.

Grouping is average-linkage agglomerative clustering over per-track mean embeddings with a cosine
threshold: two groups join only while their mean pairwise similarity is at least the threshold, and
never when two of their tracks were seen at the same time in the same source (one person cannot
be two faces in one frame). Every join is recorded with its similarity, and every track keeps the
similarity to its nearest track outside its group, so the report can show why tracks were — or
were not — put together. Nothing is merged silently.

At 10–20 px faces an embedding says little about identity: the report shows similarities as
hints for an analyst, not as identification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable, Iterable

import cv2
import numpy as np

from .geometry import ARCFACE_112, TEMPLATE, similarity

MODEL = "mobilefacenet_128d.onnx"
DEFAULT_THRESHOLD = 0.6  # photos: same person ≥ 0.67, different ≤ 0.18 at full size, ≤ 0.50 when shrunk to 12 px faces


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
    """MobileFaceNet 128-D embeddings (L2-normalised) of 112×112 BGR aligned faces."""

    def __init__(self, model: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.log_severity_level = 3
        self.path = Path(model)
        self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, faces112: list[np.ndarray], batch: int = 32) -> np.ndarray:
        if not faces112:
            return np.zeros((0, 128), np.float32)
        out = []
        for i in range(0, len(faces112), batch):
            x = np.stack(faces112[i : i + batch]).astype(np.float32)  # BGR, as the model expects
            x = ((x - 127.5) / 127.5).transpose(0, 3, 1, 2)
            out.append(self.session.run(None, {self.input: np.ascontiguousarray(x)})[0])
        e = np.concatenate(out).astype(np.float32)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


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
    """Two groups joined at `similarity` (mean pairwise cosine of their tracks)."""

    left: list[Hashable]
    right: list[Hashable]
    similarity: float


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
    # per person (index into people): the closest other person by average linkage, and whether
    # some of their tracks share a frame (then they can never be joined): (index, similarity, apart)
    nearest_person: list[tuple[int, float, bool] | None] = field(default_factory=list)


def cluster(embeddings: dict[Hashable, np.ndarray | None], threshold: float = DEFAULT_THRESHOLD,
            cannot_link: Iterable[tuple[Hashable, Hashable]] = ()) -> Clustering:
    """Average-linkage grouping of track embeddings; tracks without an embedding stay alone.

    The order of `embeddings` decides the order of people (first member) and of members.
    Group-to-group sums of similarities are updated in place on each join (Lance–Williams), so a
    run with n tracks costs O(n²) memory and about n numpy passes over an n×n matrix.
    """
    keys = list(embeddings)
    have = [k for k in keys if embeddings[k] is not None]
    idx = {k: i for i, k in enumerate(have)}
    n = len(have)
    E = np.stack([embeddings[k] for k in have]).astype(np.float64) if n else np.zeros((0, 1))
    S = E @ E.T
    cannot_link = list(cannot_link)
    forbid = np.zeros((n, n), dtype=bool)
    for a, b in cannot_link:
        if a in idx and b in idx:
            forbid[idx[a], idx[b]] = forbid[idx[b], idx[a]] = True

    # Group state: sums of pairwise similarities, sizes, forbidden pairs; row i is group i while alive.
    total = S.copy()
    size = np.ones(n)
    banned = forbid.copy()
    alive = np.ones(n, dtype=bool)
    members: list[list[int]] = [[i] for i in range(n)]
    merges: list[list[Merge]] = [[] for _ in range(n)]
    # avg: mean similarity between live groups, -inf where they may not (or cannot) join
    avg = np.where(banned | np.eye(n, dtype=bool), -np.inf, S)
    while n > 1:
        i, j = np.unravel_index(int(np.argmax(avg)), avg.shape)
        best = float(avg[i, j])
        if not best >= threshold:
            break
        i, j = min(i, j), max(i, j)
        merges[i] = merges[i] + merges[j] + [
            Merge([have[k] for k in members[i]], [have[k] for k in members[j]], round(best, 4))]
        members[i] = sorted(members[i] + members[j])
        total[i, :] += total[j, :]
        total[:, i] = total[i, :]
        banned[i, :] |= banned[j, :]
        banned[:, i] = banned[i, :]
        size[i] += size[j]
        alive[j] = False
        members[j], merges[j] = [], []
        row = np.where(alive & ~banned[i], total[i] / (size[i] * size), -np.inf)
        row[i] = -np.inf
        avg[i, :] = row
        avg[:, i] = row
        avg[j, :] = -np.inf
        avg[:, j] = -np.inf

    live = [g for g in range(n) if alive[g]]
    order = {k: m for m, k in enumerate(keys)}
    people = [Person([have[k] for k in members[g]], merges[g]) for g in live]
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
        for r in range(n):
            c = int(np.argmax(masked[r]))
            if np.isfinite(masked[r, c]):
                nearest[have[r]] = (have[c], round(float(S[r, c]), 4))
    onehot = np.zeros((n, len(people)))
    onehot[np.arange(n), owner] = 1.0
    cnt = onehot.sum(0)
    link = onehot.T @ S @ onehot / np.maximum(np.outer(cnt, cnt), 1)
    apart_p = (onehot.T @ forbid.astype(np.float64) @ onehot) > 0
    near_p: list[tuple[int, float, bool] | None] = []
    for pi in range(len(people)):
        cand = [(round(float(link[pi, q]), 4), q) for q in range(len(people)) if q != pi and cnt[pi] and cnt[q]]
        if cand:
            s, q = max(cand)
            near_p.append((q, s, bool(apart_p[pi, q])))
        else:
            near_p.append(None)
    apart = {frozenset((a, b)) for a, b in cannot_link}
    return Clustering(people, float(threshold), nearest, apart, near_p)


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
