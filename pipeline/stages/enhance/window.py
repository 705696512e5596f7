"""Which observations of a track are fused into one output: a bounded window around (or before) the face.

Files may look ahead: the window is centred on the face, so its enhancement waits until `lookahead`
later observations of the track have arrived (or the track ends). Live cameras only look back: no
added latency beyond the batcher's. Only observations cut at the same entry size are fused; the track
keeps at most `k + lookahead` recent low-res crops, so memory stays bounded on long tracks and many
cameras.
"""

from __future__ import annotations

from ...core.types import Face, Track


class FusionWindow:
    """`remember(track, face)`, then `ready`/`attach` per waiting face; `k` observations per output."""

    def __init__(self, k: int, centred: bool) -> None:
        self.k = k
        self.lookahead = k // 2 if centred else 0

    def remember(self, track: Track, face: Face) -> None:
        """Add the newest observation to the track's ring (its low-res crop stays while it is there)."""
        track.recent.append(face)
        del track.recent[: -(self.k + self.lookahead)]

    def ready(self, track: Track, face: Face) -> bool:
        """Whether enough later observations have arrived to centre the window on `face`."""
        return sum(o.frame_index > face.frame_index for o in track.recent) >= self.lookahead

    def attach(self, track: Track, face: Face) -> Face:
        """Set `face.neighbours`: up to k−1 other observations at its entry size, nearest in time first."""
        others = [o for o in track.recent if o.frame_index != face.frame_index and o.entry == face.entry
                  and o.lr is not None and o.frame_index - face.frame_index <= self.lookahead]
        others.sort(key=lambda o: (abs(o.frame_index - face.frame_index), o.frame_index))
        face.neighbours = others[: self.k - 1]
        return face
