"""Events: what happened to a camera and its tracks, as typed records shared by every event sink.

One schema feeds `events.jsonl`, MQTT and the webhook, so the three never disagree about what a field
means. `to_dict()` gives exactly the dict the runner writes to `events.jsonl` today (plus "at" and new
optional fields only when they are known), and `from_dict()` reads that dict back, so the runner can
switch from dicts to these classes without changing a byte of what other tools read:

    track_start  {"source", "event", "track", "frame", "time"}                         TrackStarted
    track_update {"source", "event", "track", "frame", "time", "observations", …}      TrackUpdated (new)
    track_end    {"source", "event", "track", "reason", "observations", "enhanced",
                  "last_time"}                                                          TrackEnded
    run_start    {"source", "event"}                                                    RunStarted (new)
    run_end      {"source", "event", "status", "frames"}                                RunEnded
    disconnect   {"source", "event", "reason", "segment", "time", "wall"}               CameraOffline
    reconnect    {"source", "event", "attempt", "after_s", "reason", "time", "wall"}    CameraReconnecting
    reconnected  {"source", "event", "attempt", "downtime_s", "segment", "time", "wall"} CameraOnline
    gave_up      {"source", "event", "attempts", "reason", "time", "wall"}              CameraGaveUp
    dropped      {"source", "event", "count", "total", "time", "wall"}                  FramesDropped

Every event has `source` (the camera's display name, never a URL with credentials), `at` (wall-clock
seconds since the epoch: written as "at", ISO 8601 UTC with milliseconds, the form `EventLog` already
writes, and as "wall" for the live-source events that carry it today) and `time` (seconds on the
stream's clock; a track end writes it as "last_time", a run end has none). An unknown kind read back
becomes an `OtherEvent` and fields a newer writer added are kept in `extra`, so nothing is lost.

Track events also fold into `TrackSnapshot`s (`TrackBook`): the `before`/`after` pair of a Frigate-style
`new`/`update`/`end` message, which MQTT and the webhook publish. `EventBus` fans one event out to several
sinks without letting a failing or slow sink reach the frame loop that emitted it.

`expand_env`, `Secrets` and `json_dumps` are the small helpers the network sinks share: `${VAR}` from the
environment, scrubbing credentials out of anything shown, and JSON that numpy values cannot break.
"""

from .bus import DictSink, EventBus, Sink
from .schema import (
    OFFLINE_KINDS,
    ONLINE_KINDS,
    CameraGaveUp,
    CameraOffline,
    CameraOnline,
    CameraReconnecting,
    Event,
    FramesDropped,
    OtherEvent,
    RunEnded,
    RunStarted,
    TrackEnded,
    TrackStarted,
    TrackUpdated,
    from_dict,
)
from ...core.text import Secrets, expand_env, json_dumps
from .tracks import TrackBook, TrackSnapshot, envelope

__all__ = [
    "OFFLINE_KINDS", "ONLINE_KINDS", "CameraGaveUp", "CameraOffline", "CameraOnline", "CameraReconnecting",
    "DictSink", "Event", "EventBus", "FramesDropped", "OtherEvent", "RunEnded", "RunStarted", "Secrets", "Sink", "TrackBook", "TrackEnded",
    "TrackSnapshot", "TrackStarted", "TrackUpdated", "envelope", "expand_env", "from_dict", "json_dumps",
]


