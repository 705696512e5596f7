"""Events: what happened to a camera and its tracks, as typed records shared by every event sink.

Sources and the session build typed events where things happen; one `EventBus` per source hands each to
its sinks: `events.jsonl` (`row()`), MQTT (Frigate's `new`/`update`/`end` with `before`/`after`
`TrackSnapshot`s, the camera's status and a JPEG snapshot) and the webhook (`envelope`). There is no dict
form on the way in. docs/events.md describes every field, topic and the camera slug rule.

    track_start  TrackStarted        track_update TrackUpdated       track_end   TrackEnded
    run_start    RunStarted          run_end      RunEnded
    disconnect   CameraOffline       reconnect    CameraReconnecting reconnected CameraOnline
    gave_up      CameraGaveUp        dropped      FramesDropped

Every event has `source` (the camera's display name, never a URL with credentials), its slug `camera`
(`camera_slug`), `at` (wall-clock seconds since the epoch, written as ISO 8601 UTC with milliseconds, and
also as "wall" for the live-source events) and `time` (seconds on the stream's clock; a track end writes
it as "last_time", run events have none).

`expand_env`, `Secrets` and `json_dumps` are the small helpers the network sinks share: `${VAR}` from the
environment, scrubbing credentials out of anything shown, and JSON that numpy values cannot break.
"""

from ...core.text import Secrets, expand_env, json_dumps
from .bus import EventBus, Sink
from .schema import (
    OFFLINE_KINDS,
    ONLINE_KINDS,
    CameraGaveUp,
    CameraOffline,
    CameraOnline,
    CameraReconnecting,
    Event,
    FramesDropped,
    RunEnded,
    RunStarted,
    TrackEnded,
    TrackEvent,
    TrackStarted,
    TrackUpdated,
    camera_slug,
)
from .tracks import TrackBook, TrackSnapshot, envelope, track_ended, track_started, track_updated

__all__ = [
    "OFFLINE_KINDS", "ONLINE_KINDS", "CameraGaveUp", "CameraOffline", "CameraOnline", "CameraReconnecting",
    "Event", "EventBus", "FramesDropped", "RunEnded", "RunStarted", "Secrets", "Sink", "TrackBook", "TrackEnded",
    "TrackEvent", "TrackSnapshot", "TrackStarted", "TrackUpdated", "camera_slug", "envelope", "expand_env",
    "json_dumps", "track_ended", "track_started", "track_updated",
]
