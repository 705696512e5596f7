"""`enhance-faces serve`: a page to browse and search the catalogue (pipeline.catalog.web).

Localhost by default; bound to any other address it refuses to start without a token (--token, or
$ENHANCE_SERVE_TOKEN, which keeps it out of the process list), and then asks every request for it.
"""

from __future__ import annotations

import argparse
import os

from .catalog import add_catalog_option, open_engine
from .common import add_config_options, add_models_option

TOKEN_VAR = "ENHANCE_SERVE_TOKEN"


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a page to browse the catalogue and search it by face")
    add_catalog_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--token", help=f"required of every request (default ${TOKEN_VAR}); needed on a non-local address")
    add_config_options(p, "YAML file for the detector and recogniser settings", "people.threads=2")
    add_models_option(p, "det_500m.onnx and mobilefacenet_128d.onnx")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .common import require_extra

    require_extra("starlette", "catalog")
    require_extra("uvicorn", "catalog")
    import uvicorn

    from ..catalog.db import shown
    from ..catalog.web.app import create_app
    from ..catalog.web.guard import required_token

    token = required_token(args.host, args.token or os.environ.get(TOKEN_VAR))
    eng = open_engine(args)

    def embedder():
        from ..catalog.embed import FaceEmbedder
        from ..core.config import load_config

        return FaceEmbedder(load_config(args.config, args.overrides), args.models)

    app = create_app(eng, embedder, token, where=f"catalog {shown(args.catalog)}")
    print(f"serving catalog {shown(args.catalog)} on http://{args.host}:{args.port}/"
          + (" (token required)" if token else ""), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", server_header=False)
    return 0
