"""Which observations of a track are worth the generator's time: pure decisions on the `Track` record.

On a 2-core CPU the generator cannot see every face of every frame, so the policy picks: `best_k` keeps
the K best observations by quality as candidates and enhances one at once only when it clearly beats the
face already shown beside the track (so the video inset improves as the track goes on; the other
candidates are enhanced when the track ends), `every_n` and `all` for when a GPU is there, `none` to
only detect and track. The policy changes nothing: the session asks, then updates the track.
"""

from __future__ import annotations

from ...core.config import EnhanceConfig
from ...core.types import Face, Track


class Policy:
    """`select(track, face)`: enhance now? `keeps(track, face)`: hold its pixels as a candidate?"""

    def __init__(self, cfg: EnhanceConfig) -> None:
        self.mode, self.k, self.every_n, self.improve = cfg.policy, cfg.best_k, cfg.every_n, cfg.improve

    @property
    def limit(self) -> int | None:
        """How many candidates a track holds (None: every one kept)."""
        return self.k if self.mode == "best_k" else None

    def keeps(self, track: Track, face: Face) -> bool:
        """Whether `face`, the track's newest observation, is worth keeping: for the generator, or — when the
        camera resolves it (`Face.resolved`) — as captured, its crop shown in the gallery without a reconstruction."""
        if self.mode == "best_k":
            return len(track.candidates) < self.k or face.quality > track.candidates[-1].quality
        return self._due(track, face)

    def select(self, track: Track, face: Face) -> bool:
        """Whether to enhance `face`, the track's newest observation, now (never a face the camera resolves)."""
        if face.resolved:
            return False
        if self.mode == "best_k":
            # the best face enhanced so far (or picked and waiting for its fusion window): each one shown beats the one before
            shown = max((f for f in (track.inset, track.promised) if f is not None), key=lambda f: f.quality, default=None)
            return self.keeps(track, face) and (shown is None or face.quality > shown.quality * (1 + self.improve))
        return self._due(track, face)

    def _due(self, track: Track, face: Face) -> bool:
        """`all` and `every_n`: whether this observation is one of those the mode takes."""
        if self.mode == "all":
            return True
        if self.mode == "every_n":
            return (len(track.faces) - 1) % self.every_n == 0
        return False
