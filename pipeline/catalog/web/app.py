"""The web application: pages to browse cameras, recordings and tracks, and to search by face.

Routes: `/` cameras and recordings; `/camera/{id}` its tracks on a timeline, filtered by time; `/track/{id}` the
camera's crops beside the enhanced ones (labelled AI-enhanced), times, confidence, provenance; `/search` by an
uploaded photo (POST) or "more like this" (`?track=ID`); `/tile/{id}` a tile's pixels, `/files/{run}/{path}` a
file of a run's folder — both only from inside that folder. Every search goes to the audit log.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ...core.draw import MARK_TEXT
from ...core.errors import EnhanceError
from ..query import Filters, when
from ..search import Index, audit, rank, track_embedding
from . import pages
from .guard import Guard, inside

log = logging.getLogger(__name__)

MAX_UPLOAD = 10 * 1024 * 1024  # bytes of a probe photo
TEMPLATES = Path(__file__).with_name("templates")
STYLE = (TEMPLATES / "style.css").read_text(encoding="utf-8")


def _filters(request: Request, camera: str | None = None) -> tuple[Filters, dict, str | None]:
    q = request.query_params
    form = {"since": q.get("since", ""), "until": q.get("until", "")}
    try:
        return Filters(camera, when(form["since"] or None), when(form["until"] or None)), form, None
    except EnhanceError as e:
        return Filters(camera), form, str(e)


def create_app(eng: sa.Engine, embedder_factory, token: str | None = None, where: str = "") -> Starlette:
    """The application on catalogue `eng`. `embedder_factory()` builds the face embedder on the first upload."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    state: dict = {}
    index = Index()  # the embeddings in memory: a search reads only the tracks added since the last

    def page(name: str, status: int = 200, **values) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(mark=MARK_TEXT, where=where, **values), status_code=status)

    def who(request: Request) -> str:
        return f"web:{request.client.host if request.client else '?'}"

    async def home(request: Request) -> Response:
        return page("home.html.j2", cameras=pages.cameras(eng), recordings=pages.recordings(eng))

    async def camera(request: Request) -> Response:
        filters, form, error = _filters(request)
        cam, tracks = pages.camera_tracks(eng, int(request.path_params["id"]), filters)
        if cam is None:
            return page("error.html.j2", 404, message="no such camera")
        return page("camera.html.j2", camera=cam, tracks=tracks, form=form, error=error)

    async def track(request: Request) -> Response:
        t = pages.track(eng, int(request.path_params["id"]))
        if t is None:
            return page("error.html.j2", 404, message="no such track")
        return page("track.html.j2", t=t)

    async def search(request: Request) -> Response:
        filters, form, error = _filters(request, request.query_params.get("camera") or None)
        top = min(max(int(request.query_params.get("top", "20") or 20), 1), 200)
        probe, kind, about, exclude = None, None, "", None
        if request.method == "POST":
            kind = "face"
            try:
                probe, about = await _upload(request, state, embedder_factory)
            except EnhanceError as e:
                error = str(e)
        elif request.query_params.get("track"):
            kind, exclude = "track", int(request.query_params["track"])
            try:
                probe, about = track_embedding(eng, exclude), f"more like track {exclude}"
            except EnhanceError as e:
                error = str(e)
        hits = []
        if probe is not None:
            hits = rank(eng, probe, filters, top, exclude=exclude, index=index)
            audit(eng, who(request), kind, {"track": exclude, "camera": filters.camera, "since": form["since"],
                                            "until": form["until"], "top": top, "results": len(hits)})
        return page("search.html.j2", hits=[{**h.as_dict(), "first": pages.iso(h.first_at)} for h in hits],
                    about=about, error=error, form=form, searched=probe is not None)

    async def tile(request: Request) -> Response:
        found = pages.tile(eng, int(request.path_params["id"]))
        path = inside(*found) if found else None
        return FileResponse(path) if path else PlainTextResponse("not found", status_code=404)

    async def files(request: Request) -> Response:
        folder = pages.run_folder(eng, int(request.path_params["run"]))
        path = inside(folder, request.path_params["path"]) if folder else None
        return FileResponse(path) if path else PlainTextResponse("not found", status_code=404)

    async def style(request: Request) -> Response:
        return Response(STYLE, media_type="text/css")

    routes = [Route("/", home), Route("/camera/{id:int}", camera), Route("/track/{id:int}", track),
              Route("/search", search, methods=["GET", "POST"]), Route("/tile/{id:int}", tile),
              Route("/files/{run:int}/{path:path}", files), Route("/style.css", style),
              Route("/favicon.ico", lambda request: Response(status_code=204))]
    app = Starlette(routes=routes)
    app.add_middleware(Guard, token=token)
    return app


async def _upload(request: Request, state: dict, embedder_factory) -> tuple[np.ndarray, str]:
    """The probe embedding of an uploaded photo; EnhanceError saying what is wrong with it."""
    if int(request.headers.get("content-length") or 0) > MAX_UPLOAD + 4096:
        raise EnhanceError(f"the photo is larger than {MAX_UPLOAD // 2**20} MB")
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("photo")
    if upload is None or isinstance(upload, str):
        raise EnhanceError("choose a photo to search with")
    data = await upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise EnhanceError(f"the photo is larger than {MAX_UPLOAD // 2**20} MB")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise EnhanceError("the upload is not an image this server can read")
    if "embedder" not in state:
        state["embedder"] = embedder_factory()
    name = upload.filename or "the photo"
    return state["embedder"].image(image, name), f"faces like the one in {name}"
