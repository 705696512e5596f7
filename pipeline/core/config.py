"""Typed, validated configuration: `configs/default.yaml` → user YAML → `--set key=value`.

Every section is a dataclass and each stage takes its own section (`Detector(cfg.detect, …)`); the dataclass
defaults are the only defaults. Unknown keys and values of the wrong type or out of range are rejected with the
dotted key's name, so a typo never silently falls back to a default. The same loader (`load`) builds the training
config (`pipeline/train/config.py`) and rebuilds a finished run's config from its manifest (`enhance-faces gallery`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from .devices import Device
from .errors import ConfigError
from .geometry import ENTRIES
from .models import CONFIGS
from .text import shown_headers, shown_url

DEFAULT_CONFIG = CONFIGS / "default.yaml"
T = TypeVar("T")
CpuPrecision = Literal["auto", "fp32", "bf16"]  # torch-cpu's arithmetic (enhance.backends.TorchCPU)


def _range(lo: float | None = None, hi: float | None = None, **kw: Any) -> Any:
    """A dataclass field with an allowed closed range, checked on load."""
    return field(metadata={"range": (lo, hi)}, **kw)


@dataclass
class SourceConfig:
    """How sources are opened and decoded."""

    threads: int = _range(0, 64, default=0)  # decoder threads (0 = FFmpeg's choice)
    max_frames: int = _range(0, None, default=0)  # stop after this many frames per source (0 = all)
    image_fps: float = _range(0.01, 1000, default=1.0)  # nominal rate for an image folder
    open_timeout_s: float = _range(0.1, 600, default=10.0)  # network sources
    read_timeout_s: float = _range(0.1, 600, default=10.0)  # network sources: no data this long = disconnected
    transport: Literal["tcp", "udp"] = "tcp"  # RTSP transport
    live_queue: int = _range(1, 1000, default=8)  # live: frames buffered; the oldest is dropped when behind
    reconnect_initial_s: float = _range(0.0, 600, default=0.5)  # live: first backoff delay, doubling per attempt
    reconnect_max_s: float = _range(0.1, 3600, default=10.0)  # live: backoff ceiling (jittered)
    reconnect_attempts: int = _range(0, 1_000_000, default=0)  # live: attempts per outage, 0 = forever
    reconnect_attempts_at_start: int = _range(0, 1_000_000, default=3)  # live: attempts to open a camera down at the start (a one-shot command gives up); 0 = keep retrying with backoff (a camera service)
    deinterlace: bool | Literal["auto"] = "auto"  # bwdif on the frames flagged interlaced (auto), on all, or none
    max_pixels: int = _range(0, None, default=7680 * 4320)  # largest frame (width x height) decoded, 8K by default; 0 = no limit


@dataclass
class DetectConfig:
    """SCRFD face detection."""

    model: str = "det_500m.onnx"  # or det_2.5g.onnx: better recall on tiny faces, ~2x cost
    input_size: int = _range(160, 2048, default=640)  # long side of the whole-frame pass's input; multiple of 32
    small_faces: float = _range(0.0, 4.0, default=1.0)  # second pass at this scale of frames the first shrinks; 0 = off
    small_every: int = _range(1, 1000, default=5)  # video: that pass over the whole frame every N frames, else around faces
    threshold: float = _range(0.05, 0.99, default=0.5)  # detector score a face needs
    min_face: int = _range(1, 4096, default=10)  # ignore faces smaller than this (px, larger box side)
    stride: int = _range(1, 1000, default=1)  # detect every N frames; the tracker carries IDs between
    device: str = ""  # auto | cpu | cuda | cuda:N; empty = the top-level `device`
    runtime: Literal["auto", "onnxruntime", "torch"] = "auto"  # auto: torch where only it can reach the GPU (docs/gpu.md)
    threads: int = _range(0, 256, default=0)  # ONNX Runtime CPU threads (0 = its choice)


@dataclass
class TrackConfig:
    """ByteTrack association."""

    high_threshold: float = _range(0.05, 0.99, default=0.5)  # detections that start/extend tracks
    match_threshold: float = _range(0.05, 0.99, default=0.2)  # minimum IoU to associate
    lost_seconds: float = _range(0.0, 60.0, default=1.0)  # a track unseen this long ends (≥ 2 detection gaps)
    min_hits: int = _range(1, 100, default=2)  # a track is reported after this many detections


@dataclass
class AlignConfig:
    """5-point similarity alignment to the generator's canonical crop."""

    entries: list[int] = field(default_factory=lambda: list(ENTRIES))  # generator entry sizes allowed
    max_downscale: float = _range(1.0, 4.0, default=1.1)  # smallest entry with ≥ (source px across the crop) / this
    resolved_span: float = _range(16.0, 100000.0, default=48.0)  # source px across the crop from which a face is as captured


@dataclass
class EnhanceConfig:
    """The generator and which observations it spends time on."""

    weights: str = ""  # safetensors file; empty = the default shipped in engines/
    backend: Literal["auto", "tensorrt", "torch-cuda", "onnxruntime", "torch-cpu"] = "auto"  # auto: the fastest the machine can run (docs/gpu.md)
    max_wait_ms: float = _range(0.0, 10000.0, default=5.0)  # batcher: flush a partial batch after this wait
    max_queue: int = _range(1, 1_000_000, default=1024)  # batcher: crops waiting before producers block
    policy: Literal["best_k", "every_n", "all", "none"] = "best_k"  # which observations are enhanced: best_k per track (fits a CPU), every_n, all, none
    best_k: int = _range(1, 1000, default=3)  # per track, for policy best_k
    every_n: int = _range(1, 100000, default=10)  # per track, for policy every_n
    improve: float = _range(0.0, 10.0, default=0.15)  # best_k: enhance early when quality beats the best so far by this fraction
    batch_size: int = _range(1, 4096, default=16)  # faces per generator call
    strength: float = _range(0.0, 1.0, default=0.6)  # share of the generator's change kept over the camera's crop
    mirror: bool | list[int] = field(default_factory=lambda: [16, 32])  # entries enhanced as seen and mirrored, averaged (pixels.mirrored; true: all, false: none): 2x their generator time
    threads: int = _range(0, 256, default=0)  # torch/ONNX Runtime threads on CPU (0 = their choice)
    cpu_precision: CpuPrecision = "auto"  # torch-cpu: bf16 convolutions on an fp32 base where the CPU has bf16 units
    cuda_compile: Literal["off", "default", "max-autotune"] = "off"  # torch-cuda: torch.compile in its CUDA graphs
    device: str = ""  # auto | cpu | cuda | cuda:N; empty = the top-level `device`
    fusion: int = _range(0, 16, default=0)  # track fusion: fuse up to this many observations per output (0 = single frame)
    fusion_window: Literal["auto", "centred", "past"] = "auto"  # auto: centred on the face for files, past only for live


@dataclass
class OutputConfig:
    """What gets written under --out."""

    video: bool = True  # annotated.mp4
    video_crf: int = _range(0, 51, default=23)  # annotated video quality (x264 CRF: lower is better, larger)
    video_preset: str = "veryfast"  # x264 preset of the annotated video
    inset_size: int = _range(32, 512, default=96)  # enhanced-face inset drawn in the annotated video
    tiles: bool = True  # tracks/<id>/ crops and enhanced tiles
    gallery: bool = True  # gallery.png
    gallery_per_track: int = _range(1, 50, default=3)  # observations shown per track in gallery.png and the report
    unmarked_tiles: bool = False  # also save enhanced tiles without the visible mark (metadata kept); implies png
    tile_files: Literal["auto", "png", "sheets"] = "auto"  # per-tile PNGs, or per-track sheets (auto: sheets for policy all/every_n)
    segment_minutes: float = _range(0.0, 1440.0, default=5.0)  # live feeds: roll annotated video every N min (0 = one file)
    detections_jsonl: bool = True  # detections.jsonl: faces.csv's rows as JSON lines


@dataclass
class PeopleConfig:
    """Grouping tracks into people with face embeddings of the ORIGINAL crops (never enhanced ones)."""

    enabled: bool = True  # group tracks into people (people.json, the gallery's sections)
    model: str = "mobilefacenet_128d.onnx"  # the face recogniser (ONNX, in --models)
    threshold: float = _range(0.0, 1.0, default=0.6)  # mean cosine for tracks to join one person
    device: str = ""  # auto | cpu | cuda | cuda:N; empty = the top-level `device`
    runtime: Literal["auto", "onnxruntime", "torch"] = "auto"  # as detect.runtime
    threads: int = _range(0, 256, default=1)  # ONNX Runtime CPU threads (0 = its choice)


@dataclass
class GalleryConfig:
    dedupe: float = _range(0.0, 1.0, default=0.9)  # SSIM ≥ this counts as a near-duplicate; 1 = keep all


@dataclass
class ProvenanceConfig:
    """Optional C2PA manifest on every tile, signed with the user's certificate."""

    c2pa_cert: str = ""  # PEM chain, signing certificate first; empty = no C2PA
    c2pa_key: str = ""  # PEM private key of the signing certificate
    c2pa_alg: Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"] = "es256"  # signing algorithm of the key
    c2pa_tsa_url: str = ""  # RFC 3161 time-stamp authority (empty = none)


@dataclass
class EventsConfig:
    """Live events to the outside (events.jsonl is always written): MQTT in Frigate's shape, an HTTP webhook.

    URLs and header values may hold `${VAR}` placeholders, filled from the environment when the sinks
    start; the settings saved in manifests keep them as written, and a password written out is saved as ***.
    """

    mqtt_url: str = ""  # mqtt[s]://[user[:password]@]host[:port]; empty = no MQTT
    mqtt_prefix: str = "enhance"  # topics <prefix>/events, /available, /<camera>/status, /<camera>/face/snapshot
    mqtt_qos: int = _range(0, 2, default=1)  # MQTT quality of service of every message
    mqtt_client_id: str = ""  # empty: enhance-<pid>-<random>
    mqtt_tls_ca: str = ""  # CA bundle for mqtts:// (empty: the system's)
    webhook_url: str = ""  # http(s)://host[:port]/path; every event POSTed as JSON; empty = no webhook
    webhook_headers: dict[str, str] = field(default_factory=dict)  # e.g. {Authorization: "Bearer ${TOKEN}"}
    webhook_timeout_s: float = _range(0.1, 600.0, default=5.0)  # per request
    webhook_retries: int = _range(0, 100, default=3)  # further attempts after a failed one (5xx, 429, network)
    webhook_backoff_s: float = _range(0.0, 600.0, default=0.5)  # first wait between attempts, doubling
    queue: int = _range(1, 1_000_000, default=1000)  # events waiting per sink; when full the oldest are dropped


@dataclass
class CatalogConfig:
    """The catalogue every finished track is written into as the run goes (`pipeline.catalog`, docs/catalog.md)."""

    url: str = ""  # empty = off; "default" = $ENHANCE_CATALOG or the user data folder's catalog.sqlite; a SQLite path or postgresql://… (${VAR} from the environment)
    embed: bool = True  # store face embeddings of the camera's crops (people.model), so tracks can be searched by face


@dataclass
class CameraConfig:
    """One entry of `sources:` — a named camera or file, so outputs go to `--out DIR/<name>/`."""

    name: str = ""
    uri: str = ""  # file, folder, rtsp://…, /dev/videoN; `${VAR}` placeholders expand from the environment


def stage_device(stage: DetectConfig | EnhanceConfig | PeopleConfig, top: str | Device = "auto") -> Device:
    """The rule for every model: a stage's own `device` setting, else the top-level one."""
    return Device.of(stage.device or top)


@dataclass
class Config:
    device: str = "auto"  # every model: auto (a GPU when present) | cpu | cuda | cuda:N; see docs/gpu.md
    sources: list[CameraConfig] = field(default_factory=list)  # named cameras/files ({name, uri}); outputs go to --out DIR/<name>/
    source: SourceConfig = field(default_factory=SourceConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    enhance: EnhanceConfig = field(default_factory=EnhanceConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    people: PeopleConfig = field(default_factory=PeopleConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    provenance: ProvenanceConfig = field(default_factory=ProvenanceConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)

    def device_of(self, stage: DetectConfig | EnhanceConfig | PeopleConfig) -> Device:
        """A stage's device: its own setting, else the top-level one (checked when the config loads)."""
        return stage_device(stage, self.device)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data, for the manifest and every tile's provenance record: a password
        written into a URL or a header is ***, `${VAR}` placeholders stay as written (never their values)."""
        d = dataclasses.asdict(self)
        ev = d["events"]
        ev["mqtt_url"], ev["webhook_url"] = shown_url(ev["mqtt_url"]), shown_url(ev["webhook_url"], keep_path=False)
        ev["webhook_headers"] = shown_headers(ev["webhook_headers"])
        d["catalog"]["url"] = shown_url(d["catalog"]["url"])
        for cam in d["sources"]:
            cam["uri"] = shown_url(cam["uri"])
        return d

    def tile_sheets(self) -> bool:
        """Whether tracks keep their tiles on sheets: asked for, or (auto) a policy that enhances most faces.
        Never with `output.unmarked_tiles`: evaluation reads those single files."""
        if self.output.unmarked_tiles or self.output.tile_files == "png":
            return False
        return self.output.tile_files == "sheets" or self.enhance.policy in ("all", "every_n")


# ---------------------------------------------------------------- loading and validation

def _coerce(value: Any, tp: Any, key: str, what: str) -> Any:
    """Check (and gently convert) one value against its annotated type."""
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (inner,) = get_args(tp)
        if dataclasses.is_dataclass(inner):
            return [build(inner, v, what, f"{key}[{i}].") for i, v in enumerate(value)]
        return [_coerce(v, inner, f"{key}[{i}]", what) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        k_tp, v_tp = get_args(tp)
        return {_coerce(k, k_tp, key, what): _coerce(v, v_tp, f"{key}.{k}", what) for k, v in value.items()}
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]", what) for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            if arg is type(None) and value is None:
                return None
            try:
                return _coerce(value, arg, key, what)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} has the wrong type")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        with contextlib.suppress(ValueError):  # YAML 1.1 reads an exponent without a dot (5e-5) as a string
            value = float(value) if isinstance(value, str) else value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):  # NaN passes every range check; infinity is never meant
            raise ConfigError(f"{key}: {value!r} is not a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def build(cls: type[T], data: dict[str, Any], what: str = "config", prefix: str = "") -> T:
    """The dataclass `cls` from a mapping: every key known, every value typed and in range."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or what}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"unknown {what} key '{key}' (known: {', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build(tp, value or {}, what, f"{key}.")
            continue
        value = _coerce(value, tp, key, what)
        lo, hi = fields[name].metadata.get("range", (None, None))
        if lo is not None and value < lo or hi is not None and value > hi:
            bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise ConfigError(f"{key}: {value!r} is out of range {bounds}")
        kwargs[name] = value
    return cls(**kwargs)


def known(cls: type, data: Any) -> Any:
    """`data` without the keys `cls` does not declare (settings saved by another version of the program)."""
    if not isinstance(data, dict) or not dataclasses.is_dataclass(cls):
        return data
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: known(hints[k], v) if dataclasses.is_dataclass(hints[k]) else v for k, v in data.items() if k in names}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` laid on `base`, mappings merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every failure into a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    data = safe_yaml(text, f"in {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


MAX_YAML_DEPTH = 64  # nested mappings and lists a config may hold (the deepest real one is a few levels)


def safe_yaml(text: str, where: str) -> Any:
    """`yaml.safe_load(text)`, every failure a one-line ConfigError (`where`: "in FILE"); nesting deeper
    than MAX_YAML_DEPTH is refused before it is built (PyYAML builds nested values recursively, so a
    100,000-deep document would end in a RecursionError)."""
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark is not None else "?"
                    raise ConfigError(f"YAML {where} is nested deeper than {MAX_YAML_DEPTH} levels (at line "
                                      f"{line}): not a config")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"bad YAML {where}{at}: {getattr(e, 'problem', e)}") from None
    except RecursionError:  # a deep alias chain, say: whatever the cause, one line
        raise ConfigError(f"YAML {where} is nested too deeply: not a config") from None


def parse_override(item: str) -> dict[str, Any]:
    """`detect.threshold=0.4` → {"detect": {"threshold": 0.4}}; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set: bad key {key!r}")
    try:
        value = safe_yaml(raw, f"in --set {key}") if raw.strip() else ""
    except ConfigError:
        if raw.count("[") + raw.count("{") > MAX_YAML_DEPTH:
            raise
        value = raw
    out: dict[str, Any] = {parts[-1]: value}
    for p in reversed(parts[:-1]):
        out = {p: out}
    return out


def load(cls: type[T], layers: list[dict[str, Any]], path: str | Path | None = None,
         overrides: list[str] | None = None, what: str = "config") -> T:
    """`layers` (mappings, in order) → YAML file → `--set` overrides, validated once at the end."""
    data: dict[str, Any] = {}
    for layer in layers:
        data = merge(data, layer)
    if path is not None:
        data = merge(data, read_yaml(path))
    for item in overrides or []:
        data = merge(data, parse_override(item))
    return build(cls, data, what)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                saved: dict[str, Any] | None = None) -> Config:
    """configs/default.yaml → `saved` (a finished run's settings) → user YAML → --set overrides."""
    layers = [read_yaml(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else {}]
    if saved:
        layers.append(known(Config, saved))
    cfg = load(Config, layers, path, overrides)
    if cfg.detect.input_size % 32:
        raise ConfigError(f"detect.input_size: {cfg.detect.input_size} is not a multiple of 32")
    for i, cam in enumerate(cfg.sources):
        if not cam.uri:
            raise ConfigError(f"sources[{i}].uri: missing")
    if len(names := [c.name for c in cfg.sources if c.name]) != len(set(names)):
        raise ConfigError(f"sources: camera names must be unique, got {names}")
    for key, stage in (("detect", cfg.detect), ("enhance", cfg.enhance), ("people", cfg.people)):
        Device.parse(stage.device or cfg.device, f"{key}.device" if stage.device else "device")
    if not cfg.align.entries or not set(cfg.align.entries) <= set(ENTRIES):
        raise ConfigError(f"align.entries: {cfg.align.entries} must be a non-empty subset of {list(ENTRIES)}")
    if isinstance(cfg.enhance.mirror, list) and not set(cfg.enhance.mirror) <= set(ENTRIES):
        raise ConfigError(f"enhance.mirror: {cfg.enhance.mirror} must be true, false or entries among {list(ENTRIES)}")
    return cfg
