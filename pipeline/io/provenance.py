"""Provenance: every tile says what it is — visibly, in PNG text chunks, in XMP, in a JSON sidecar,
and optionally in a C2PA manifest signed with the user's certificate.

An enhanced face is a plausible reconstruction by a generative model, not a photograph. The
visible mark survives a screenshot; the metadata survives a copy of the file; the sidecar survives a
tool that strips metadata; a C2PA signature lets a third party check that nobody edited the claim.

Keys written into each PNG (tEXt, or iTXt when a value is not Latin-1):

- ``Software``, ``AI-Generated`` ("true"/"false"), ``Description``, ``Source``, ``Frame``, ``Time``,
  ``Box`` (x1,y1,x2,y2 in source pixels), ``Track`` — short values any PNG viewer shows;
- ``Generator``, ``Generator-SHA256``, ``Source-URI``, ``Visible-Mark``;
- ``Enhance-Provenance``: the full record as JSON (the same as the sidecar);
- ``XML:com.adobe.xmp``: an XMP packet with IPTC's DigitalSourceType (``trainedAlgorithmicMedia``
  for enhanced tiles) and the same fields under the ``enh:`` namespace.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import cv2
import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..core.config import ProvenanceConfig
from ..core.draw import MARK_TEXT
from ..core.errors import ConfigError
from ..stages.enhance.confidence import LOW
from .records import Observation
from .sources.urls import redact

SOFTWARE = "Enhance"
AI_DESCRIPTION = "AI-enhanced reconstruction, not a photograph"
ORIGINAL_DESCRIPTION = "Original pixels sampled from the source (aligned crop), not enhanced"
SCHEMA = "enhance.tile/1"
PROVENANCE_KEY = "Enhance-Provenance"
XMP_KEY = "XML:com.adobe.xmp"
XMP_NS = "http://ns.enhance.invalid/provenance/1.0/"  # ours; .invalid: a name, not a web address
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
IPTC_TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
# ------------------------------------------------------------------------------ the record


def generator_of(run_info: dict | None) -> dict | None:
    """{name, sha256, trained} of the generator in a runner's `info()` dict (or a bare generator dict)."""
    if not run_info:
        return None
    gen = run_info.get("generator", run_info if "sha256" in run_info else None)
    if not gen:
        return None
    name = gen.get("name") or (Path(str(gen["path"])).stem if gen.get("path") else "unknown")
    out = {"name": str(name), "sha256": str(gen.get("sha256", ""))}
    if "trained" in gen:
        out["trained"] = bool(gen["trained"])
    return out


def tile_record(kind: str, obs: Observation, run_info: dict | None = None,
                visible_mark: bool | None = None) -> dict:
    """The provenance of one tile of observation `obs` (its "tile" projection, `records.FIELDS`), plus what
    the tile is. `kind`: "enhanced"/"enhanced_unmarked" (synthesized), "original" or "lr" (source pixels)."""
    ai = kind.startswith("enhanced")
    info = run_info or {}
    inputs = info.get("inputs") or []
    fields = obs.project("tile")
    rec: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": kind,
        "ai_generated": ai,
        "description": AI_DESCRIPTION if ai else ORIGINAL_DESCRIPTION,
        "digital_source_type": IPTC_TRAINED if ai else IPTC_CAPTURE,
        "visible_mark": bool(visible_mark) if ai else False,
        "software": str(info.get("tool") or SOFTWARE),
        "generator": generator_of(info) if ai else None,
        "source": {"name": obs.source, "uri": redact(inputs[0]) if inputs else None},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for key in ("frame", "time", "box", "track", "kps", "entry", "crop_matrix"):
        if fields.get(key) is not None and (key != "entry" or fields[key]):
            rec[key] = fields[key]
    if ai and obs.fused_frames:  # track fusion: the camera pixels this reconstruction also rests on
        rec["fused_from"] = [{"frame": f, "time": t} for f, t in zip(obs.fused_frames, obs.fused_times)]
    confidence = fields.get("confidence")
    if ai and confidence is not None:
        rec["confidence"] = confidence
        rec["input_mismatch"] = fields.get("input_mismatch")
        rec["low_confidence"] = bool(confidence < LOW)
        if confidence < LOW:
            rec["warning"] = "low confidence: too small or too damaged to reconstruct faithfully"
    if info.get("settings") is not None:
        rec["settings"] = info["settings"]
    return rec


def png_text(rec: dict) -> dict[str, str]:
    """The PNG text chunks for a record: short human keys, the JSON record, and XMP."""
    gen = rec.get("generator") or {}
    text = {
        "Software": SOFTWARE,
        "AI-Generated": "true" if rec["ai_generated"] else "false",
        "Description": rec["description"],
        "Source": rec["source"]["name"],
        "Frame": str(rec["frame"]),
        "Time": f"{rec['time']:.3f}",
        "Box": ",".join(f"{v:.1f}" for v in rec["box"]),
        "Track": str(rec["track"]),
        **({"Fused-Frames": ",".join(str(f["frame"]) for f in rec["fused_from"])} if rec.get("fused_from") else {}),
        "Visible-Mark": MARK_TEXT if rec.get("visible_mark") else "none",
    }
    if gen:
        text["Generator"] = gen.get("name", "")
        text["Generator-SHA256"] = gen.get("sha256", "")
    if rec["source"].get("uri"):
        text["Source-URI"] = rec["source"]["uri"]
    text[PROVENANCE_KEY] = json.dumps(rec, ensure_ascii=False, sort_keys=True, default=str)
    text[XMP_KEY] = xmp_packet(rec)
    return text


def xmp_packet(rec: dict) -> str:
    """An XMP packet (RDF/XML) for the record; every value is XML-escaped."""
    gen = rec.get("generator") or {}
    attrs = {
        "xmp:CreatorTool": rec.get("software", SOFTWARE),
        "xmp:CreateDate": rec.get("created", ""),
        "Iptc4xmpExt:DigitalSourceType": rec["digital_source_type"],
        "enh:AIGenerated": "True" if rec["ai_generated"] else "False",
        "enh:Kind": rec["kind"],
        "enh:VisibleMark": "True" if rec.get("visible_mark") else "False",
        "enh:GeneratorName": gen.get("name", ""),
        "enh:GeneratorSHA256": gen.get("sha256", ""),
        "enh:Source": rec["source"]["name"],
        "enh:SourceURI": rec["source"].get("uri") or "",
        "enh:Frame": str(rec["frame"]),
        "enh:Time": f"{rec['time']:.4f}",
        "enh:Box": ",".join(f"{v:.1f}" for v in rec["box"]),
        "enh:Track": str(rec["track"]),
    }
    if rec.get("fused_from"):
        attrs["enh:FusedFrames"] = ",".join(str(f["frame"]) for f in rec["fused_from"])
    if rec.get("confidence") is not None:
        attrs["enh:Confidence"] = f"{rec['confidence']:.4f}"
    body = "\n    ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    xmlns:Iptc4xmpExt="{IPTC_EXT_NS}"\n'
        f'    xmlns:enh="{XMP_NS}"\n'
        f"    {body}>\n"
        f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(rec["description"])}</rdf:li></rdf:Alt></dc:description>\n'
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )


def parse_xmp(packet: str) -> dict[str, str]:
    """The attributes of an XMP packet's rdf:Description, keyed `prefix:Name` for the namespaces we write."""
    prefixes = {XMP_NS: "enh", IPTC_EXT_NS: "Iptc4xmpExt", "http://ns.adobe.com/xap/1.0/": "xmp"}
    start, end = packet.find("<x:xmpmeta"), packet.rfind("</x:xmpmeta>")
    root = ET.fromstring(packet[start : end + len("</x:xmpmeta>")])
    out: dict[str, str] = {}
    for desc in root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description"):
        for k, v in desc.attrib.items():
            if k.startswith("{"):
                ns, name = k[1:].split("}", 1)
                if ns in prefixes:
                    out[f"{prefixes[ns]}:{name}"] = v
        for li in desc.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li"):
            out.setdefault("dc:description", li.text or "")
    return out


# ------------------------------------------------------------------------------ writing and reading


def sidecar_path(png: Path) -> Path:
    """f000012_enhanced.png → f000012_enhanced.json"""
    return Path(png).with_suffix(".json")


def save_png(path: Path, bgr: np.ndarray, text: dict[str, str]) -> None:
    """Write a BGR image as PNG with text chunks (iTXt for XMP and for non-Latin-1 values), atomically."""
    path = Path(path)
    info = PngInfo()
    for k, v in text.items():
        v = str(v)
        if k == XMP_KEY:
            info.add_itxt(k, v)
        else:
            info.add_text(k, v)  # PIL switches to iTXt itself when the value is not Latin-1
    rgb = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2RGB)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(rgb).save(tmp, format="PNG", pnginfo=info, compress_level=4)
    os.replace(tmp, path)


def write_tile(path: Path, bgr: np.ndarray, rec: dict, sidecar: bool = True,
               signer: "C2paSigner | None" = None) -> list[Path]:
    """PNG with chunks + XMP, then the JSON sidecar, then (enhanced tiles) the C2PA manifest; returns the paths."""
    path = Path(path)
    save_png(path, bgr, png_text(rec))
    written = [path]
    if signer is not None and rec["ai_generated"]:
        signer.sign(path, rec)
    if sidecar:
        sp = sidecar_path(path)
        tmp = sp.with_name(sp.name + ".tmp")
        tmp.write_text(json.dumps({**rec, "file": path.name}, indent=1, ensure_ascii=False, default=str),
                       encoding="utf-8")
        os.replace(tmp, sp)
        written.append(sp)
    return written


def read_tile(path: Path) -> dict:
    """What a tile says about itself: {"text": chunks, "record": JSON, "xmp": fields, "sidecar": JSON|None}."""
    path = Path(path)
    with Image.open(path) as im:
        im.load()
        text = dict(getattr(im, "text", {}) or {})
    rec = json.loads(text[PROVENANCE_KEY]) if PROVENANCE_KEY in text else None
    xmp = parse_xmp(text[XMP_KEY]) if XMP_KEY in text else None
    sp = sidecar_path(path)
    side = json.loads(sp.read_text(encoding="utf-8")) if sp.is_file() else None
    return {"text": text, "record": rec, "xmp": xmp, "sidecar": side}


# ------------------------------------------------------------------------------ C2PA (optional)


@dataclass
class C2paSigner:
    """Signs enhanced tiles with a C2PA manifest (c2pa-python), using the user's certificate chain and key.

    `cert`: PEM with the signing certificate first, then its issuers (C2PA rejects a lone self-signed
    end certificate); `key`: its PEM private key; `alg`: es256/es384/es512/ps256/ps384/ps512/ed25519.
    """

    cert: Path
    key: Path
    alg: str = "es256"
    tsa_url: str | None = None

    def __post_init__(self) -> None:
        try:
            import c2pa
        except ImportError:
            raise ConfigError("provenance.c2pa_cert is set but c2pa-python is not installed "
                              "(pip install c2pa-python)") from None
        for what, p in (("provenance.c2pa_cert", self.cert), ("provenance.c2pa_key", self.key)):
            if not Path(p).is_file():
                raise ConfigError(f"{what}: file not found: {p}")
        self._chain = Path(self.cert).read_bytes()
        self._key = Path(self.key).read_bytes()
        self._signer()  # fail now, with the reason, rather than at the first tile
        # No embedded thumbnail: a tile is its own thumbnail, and making one costs ~0.2 s per tile.
        try:
            self._context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        except Exception:  # an older c2pa-python without per-builder settings
            self._context = None

    def _signer(self):  # a Signer is consumed per use in some c2pa versions: make one each time
        import c2pa

        try:
            return c2pa.Signer.from_info(c2pa.C2paSignerInfo(self.alg.lower(), self._chain, self._key, self.tsa_url))
        except Exception as e:  # c2pa.C2paError and ValueError
            raise ConfigError(f"provenance.c2pa_cert/c2pa_key: cannot make a C2PA signer: {e}") from None

    def manifest(self, rec: dict, title: str) -> dict:
        gen = rec.get("generator") or {}
        agent = f"{gen.get('name', 'generator')} (sha256 {gen.get('sha256', '?')})"
        return {
            "claim_generator_info": [{"name": SOFTWARE, "version": str(rec.get("software", SOFTWARE))}],
            "title": title,
            "format": "image/png",
            "assertions": [
                {"label": "c2pa.actions", "data": {"actions": [{
                    "action": "c2pa.created",
                    "digitalSourceType": rec["digital_source_type"],
                    "softwareAgent": {"name": agent},
                    "description": rec["description"],
                }]}},
                {"label": "org.enhance.provenance", "data": rec},
            ],
        }

    def sign(self, path: Path, rec: dict) -> None:
        """Embed a signed manifest into the PNG at `path` (in place, atomically)."""
        import c2pa

        path = Path(path)
        tmp = path.with_name(path.name + ".c2pa.tmp")
        try:
            manifest = json.loads(json.dumps(self.manifest(rec, path.name), default=str))
            builder = (c2pa.Builder(manifest, context=self._context) if self._context is not None
                       else c2pa.Builder(manifest))
            with builder as b, open(path, "rb") as src, open(tmp, "w+b") as dst:
                b.sign(self._signer(), "image/png", src, dst)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def read_c2pa(path: Path) -> dict | None:
    """The active C2PA manifest and validation state of a file, or None if it has none / c2pa is missing."""
    try:
        import c2pa
    except ImportError:
        return None
    try:
        with c2pa.Reader(str(path)) as r:
            return {"manifest": r.get_active_manifest(), "state": r.get_validation_state(),
                    "results": r.get_validation_results()}
    except Exception:
        return None


def signer_from_config(cfg: ProvenanceConfig) -> C2paSigner | None:
    """A signer from the `provenance` section (c2pa_cert, c2pa_key, c2pa_alg, c2pa_tsa_url), or None."""
    if not cfg.c2pa_cert and not cfg.c2pa_key:
        return None
    if not cfg.c2pa_cert or not cfg.c2pa_key:
        raise ConfigError("provenance.c2pa_cert and provenance.c2pa_key must be set together")
    return C2paSigner(Path(cfg.c2pa_cert), Path(cfg.c2pa_key), cfg.c2pa_alg, cfg.c2pa_tsa_url or None)
