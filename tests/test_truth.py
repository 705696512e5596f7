"""Real-video fidelity geometry: pixel-centre-exact cutting, and the shrink → encode → crop chain on a moving blob."""

from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest

from pipeline.core.geometry import CROP, resize_matrix, similarity
from pipeline.lab.track_probe import STRENGTHS
from pipeline.lab.truth import bicubic_crop, encode, plan_shrink, read_frames
from pipeline.stages.align import warp
from support.paths import HEADS, IMAGES, MODELS, require

pytestmark = pytest.mark.slow  # end-to-end runs of real video and servers: the full suite, not the fast lane


def blob(h: int, w: int, cx: float, cy: float, sigma: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
    return np.dstack([np.clip(20 + 220 * g, 0, 255).round().astype(np.uint8)] * 3)


def centroid(img: np.ndarray) -> np.ndarray:
    g = img[..., 1].astype(np.float64) - np.median(img[..., 1])
    g = np.clip(g, 0, None)
    y, x = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return np.array([(g * x).sum(), (g * y).sum()]) / g.sum()


def face_matrix(cx: float, cy: float, span: float, angle: float = 0.0) -> np.ndarray:
    """A source → crop similarity putting (cx, cy) at the crop centre with `span` source pixels across it."""
    k, a = CROP / span, np.deg2rad(angle)
    r = k * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([r, (np.array([63.5, 63.5]) - r @ [cx, cy])[:, None]])


@pytest.mark.parametrize("size", [16, 32, 64])
def test_lr_input_is_the_area_resized_crop(size):
    """The generator input cut at an entry size sits exactly where training puts it: the 128 crop area-resized."""
    img = blob(400, 400, 201.3, 187.7, 9.0)
    m = similarity(np.array([[180, 170], [222, 172], [201, 190], [184, 210], [218, 211]], np.float32))
    lr = warp(img, m, size)
    ref = cv2.resize(warp(img, m, CROP), (size, size), interpolation=cv2.INTER_AREA)
    err = np.linalg.norm(centroid(lr) - centroid(ref)) * CROP / size
    assert err < 0.1, f"entry {size}: {err:.3f} px (128-crop units) off the area-resized crop"
    # and the old cut (matrix scaled by size/128, no centre correction) would be visibly off
    old = cv2.warpAffine(img, m * (size / CROP), (size, size), flags=cv2.INTER_LINEAR)
    assert np.linalg.norm(centroid(old) - centroid(ref)) * CROP / size > 0.4


def test_resize_matrix_maps_pixel_centres():
    m = np.array([[0.9, 0.1, 3.0], [-0.1, 0.9, 5.0]])
    for size in (16, 32, 64):
        r = resize_matrix(m, size)
        p = np.array([17.0, 33.0, 1.0])
        u128, u = m @ p, r @ p
        assert np.allclose((u + 0.5) * CROP / size - 0.5, u128)


def test_truth_and_bicubic_agree_on_a_moving_blob(tmp_path):
    """HR blob clip → area shrink → pad → H.264 → decode: the crop cut from the camera frame (bicubic) and the
    one cut from the HR frame through the composed matrix put the blob at the same place (< 0.1 px)."""
    w = h = 480
    frames = [blob(h, w, 200 + 7.3 * t, 230 - 3.1 * t, 36.0) for t in range(8)]
    shrink = plan_shrink(w, h, face_h=240, face_px=32)  # 7.5× down into a 640×360 frame
    assert shrink.ox % 2 == 0 and shrink.oy % 2 == 0
    encode((shrink.apply(f) for f in frames), tmp_path / "cam.mp4", Fraction(25), crf=0)  # x264 lossless: geometry only
    cams = list(read_frames(tmp_path / "cam.mp4"))
    assert len(cams) == len(frames)
    a = shrink.hr_to_lr()
    errs = []
    for t, (hr, cam) in enumerate(zip(frames, cams)):
        cx, cy = a @ np.array([200 + 7.3 * t, 230 - 3.1 * t, 1.0])
        m = face_matrix(cx + 0.37, cy - 0.21, span=48, angle=7)  # a crop not centred on the blob
        truth = shrink.truth(hr, m)
        bic = bicubic_crop(cam, m)
        exact = bicubic_crop(shrink.apply(hr), m)  # the camera frame before encoding
        assert np.linalg.norm(centroid(truth) - centroid(exact)) < 0.02
        errs.append(np.linalg.norm(centroid(truth) - centroid(bic)))
        assert truth.shape == bic.shape == (CROP, CROP, 3)
    assert max(errs) < 0.1, f"truth and bicubic disagree by up to {max(errs):.3f} px"


def test_truth_takes_the_padding_outside_the_frame():
    shrink = plan_shrink(200, 200, face_h=100, face_px=20)
    hr = np.full((200, 200, 3), 250, np.uint8)
    a = shrink.hr_to_lr()
    cx, cy = a @ np.array([0.0, 0.0, 1.0])  # the crop centred on the HR frame's corner
    truth = shrink.truth(hr, face_matrix(cx, cy, span=30))
    assert truth[5, 5, 0] == shrink.pad and truth[-5, -5, 0] == 250


NEEDS_HEADS = pytest.mark.skipif(not (HEADS / "d0.mp4").is_file(), reason="talking-head clips not in ../shared")


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    """`enhance-faces lab eval-video` once on a real clip at 24 px faces: (rc, summary JSON path, --out folder)."""
    from pipeline.cli import main

    tmp = tmp_path_factory.mktemp("ev")
    js = tmp / "s.json"
    groups = tmp / "split.yaml"
    groups.write_text("groups: {d0: [older], d3: [child]}\n")
    rc = main(["lab", "eval-video", str(HEADS / "d0.mp4"), "--face-px", "24", "--out", str(tmp / "ev"),
               "--models", str(MODELS), "--json", str(js), "--groups", str(groups)])
    return rc, js, tmp / "ev"


@NEEDS_HEADS
def test_eval_video_end_to_end(eval_run):
    """`enhance-faces lab eval-video` on a real clip: the pipeline finds the face, the tiles score against the truth."""
    rc, js, out = eval_run
    assert rc == 0
    summary = json.loads(js.read_text())
    r = summary["clips"]["d0"]["24"]
    assert r["detection_rate"] > 0.9 and r["observations"] > 60
    assert summary["codec"] == "libx264" and list(summary["groups"]) == ["older"]  # per group: only clips run
    assert summary["groups"]["older"]["clips"] == ["d0"] and summary["groups"]["older"]["24"] == summary["mean"]["24"]
    for m in ("model", "bicubic"):
        assert 20 < r[m]["psnr"] < 40 and 0 < r[m]["ssim"] < 1 and -1 < r[m]["id_cos"] <= 1
        assert 0 < r[m]["temporal"] < 20
    assert r["temporal_pairs"] > 50
    per_obs = np.array([o[1:] for o in r["confidence"]["per_obs"]], np.float64)  # PSNR, gain, identity, bicubic's
    assert len(per_obs) == r["observations"]
    assert abs(per_obs[:, 2].mean() - r["model"]["id_cos"]) < 1e-3  # each observation's own identity, model ...
    assert abs(per_obs[:, 3].mean() - r["bicubic"]["id_cos"]) < 1e-3  # ... and bicubic, average to the clip's
    sheet = cv2.imread(str(out / "d0" / "face24" / "samples.png"))
    assert sheet.shape[1] == 4 * 128 and (sheet.shape[0] - 40) % 128 == 0  # title line, column names, rows of tiles
    track = json.loads(next((out / "d0" / "face24" / "run" / "tracks").glob("*/track.json")).read_text())
    assert len(track["observations"][0]["matrix"]) == 2


@NEEDS_HEADS
def test_probe_track_reproduces_the_pipeline_and_runs_each_estimator(eval_run, tmp_path):
    """`enhance-faces lab probe-track` on that folder: its `single` re-cut and re-enhanced from the camera clip scores as
    eval-video scored the pipeline's own tiles, and the track estimators score the same observations."""
    from pipeline.cli import main

    rc, js, out = eval_run
    assert rc == 0
    pj = tmp_path / "probe.json"
    assert main(["lab", "probe-track", str(out), "--windows", "3", "--sigmas", "2", "--every", "1",
                 "--models", str(MODELS), "--json", str(pj)]) == 0
    ev = json.loads(js.read_text())["clips"]["d0"]["24"]
    r = json.loads(pj.read_text())["clips"]["d0"]["24"]
    assert r["single"]["n"] == r["observations"] == ev["observations"] - ev["resolved"]
    assert r["single"]["delta_psnr"] == pytest.approx(ev["delta_psnr"], abs=0.02)
    for name in ("average_3", "smooth_centred_2", "smooth_past_2", "back_project_1", "back_project_3"):
        assert r[name]["n"] == r["single"]["n"] and abs(r[name]["delta_psnr"] - r["single"]["delta_psnr"]) < 2.0
    assert 15 < r["lr_vs_truth_psnr"] < r["uncoded_vs_truth_psnr"] < 45  # the codec only loses
    assert r["lr_vs_truth_psnr"] < r["yuv420_vs_truth_psnr"] < r["uncoded_vs_truth_psnr"]  # 4:2:0 alone loses less
    assert r["uncoded_bicubic"]["delta_psnr"] > 0 and r["uncoded_single"]["n"] == r["single"]["n"]
    fixed = [r[f"strength_{s:g}"]["delta_psnr"] for s in STRENGTHS] + [r["single"]["delta_psnr"]]
    assert len(set(fixed)) == len(fixed)  # each strength is its own finish
    assert r["strength_oracle"]["delta_psnr"] >= max(fixed) - 0.01  # per tile, the oracle picks the best blend
    oracle = r["codec_oracle"]  # a linear filter fitted to half the clip, scored on the other half
    assert oracle["scored"] > 20 and oracle["coded_psnr"] - 0.2 < oracle["restored_psnr"] < oracle["uncoded_psnr"]
    t = r["temporal"]  # on every observation: the pipeline's own tiles score as eval-video scored them
    assert t["single"]["delta_psnr"] == pytest.approx(ev["delta_psnr"], abs=0.05)
    assert t["single"]["temporal"] == pytest.approx(ev["model"]["temporal"], rel=0.05)
    assert t["bicubic"]["temporal"] == pytest.approx(ev["bicubic"]["temporal"], rel=0.05)
    assert abs(t["filter_past"]["delta_psnr"] - t["single"]["delta_psnr"]) < 0.5
    assert t["camera_1.5x"]["temporal"] < t["camera_1x"]["temporal"]  # a finer camera follows the truth closer
    assert t["camera_1.5x"]["delta_psnr"] > t["camera_1x"]["delta_psnr"] > 0


def test_oracle_strength_is_the_least_squares_blend():
    """`track_probe.oracle_strength`: the share of the change over the crop that lands closest to the truth,
    kept within 0..1."""
    from pipeline.lab.track_probe import oracle_strength

    crop = np.full((8, 8, 3), 100, np.uint8)
    change = np.random.default_rng(0).integers(-40, 40, (8, 8, 3))
    anchored = (crop + change).astype(np.uint8)
    assert oracle_strength(anchored, crop, (crop + 0.3 * change).astype(np.uint8)) == pytest.approx(0.3, abs=0.02)
    assert oracle_strength(anchored, crop, (crop - change).astype(np.uint8)) == 0.0  # the change points away
    assert oracle_strength(anchored, crop, anchored) == pytest.approx(1.0)
    assert oracle_strength(crop, crop, anchored) == 0.0  # no change at all


def test_probe_track_refuses_a_folder_without_an_eval_video_summary(tmp_path, capsys):
    from pipeline.cli import main

    assert main(["lab", "probe-track", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "summary.json" in err and "\n" not in err


def test_registration_undoes_a_sub_pixel_shift():
    """`track_probe.register` puts a neighbour shifted by a fraction of a low-res pixel back onto the target."""
    from pipeline.lab.track_probe import register

    hr = blob(128, 128, 60.0, 66.0, 14.0) // 2 + blob(128, 128, 80.0, 50.0, 6.0) // 2
    target = cv2.resize(hr, (32, 32), interpolation=cv2.INTER_AREA)
    shift = np.float32([[1, 0, 0.6 * 4], [0, 1, -0.4 * 4]])  # 0.6 and −0.4 low-res pixels
    moved = cv2.resize(cv2.warpAffine(hr, shift, (128, 128), borderMode=cv2.BORDER_REFLECT), (32, 32),
                       interpolation=cv2.INTER_AREA)
    back = register(moved, target)
    inner = (slice(4, -4), slice(4, -4))
    before = np.abs(moved.astype(np.float32) - target)[inner].mean()
    after = np.abs(back - target.astype(np.float32))[inner].mean()
    assert after < 0.25 * before


def test_back_projection_recovers_resolution_from_a_shifted_burst():
    """`track_probe.back_project` on four camera frames of one scene, shifted by half a camera pixel each way:
    closer to the truth at twice the camera's resolution than one frame, and than one frame's bicubic."""
    from pipeline.lab.eval_video import psnr
    from pipeline.lab.track_probe import back_project

    rng = np.random.default_rng(0)
    hr = sum(blob(128, 128, rng.uniform(10, 118), rng.uniform(10, 118), rng.uniform(2.5, 5)).astype(np.float64) - 20
             for _ in range(40))
    hr = np.clip(hr / hr.max() * 230 + 20, 0, 255).astype(np.uint8)
    truth = cv2.resize(hr, (64, 64), interpolation=cv2.INTER_AREA)  # the grid: 2× the camera's 32 px
    ys, xs = np.mgrid[0:32, 0:32]
    coords = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    frames = []
    for sx, sy in ((0, 0), (2, 2), (2, 0), (0, 2)):  # high-res px: half a camera pixel
        shifted = cv2.warpAffine(hr, np.float32([[1, 0, sx], [0, 1, sy]]), (128, 128), borderMode=cv2.BORDER_REFLECT)
        camera = cv2.resize(shifted, (32, 32), interpolation=cv2.INTER_AREA)
        # camera pixel i sees high-res [4i − s, 4i − s + 4): grid position 2i + 0.5 − s/2
        frames.append((camera.reshape(-1, 3).astype(np.float64), coords,
                       np.array([[2.0, 0, 0.5 - sx / 2], [0, 2.0, 0.5 - sy / 2]])))
    start = cv2.resize(frames[0][0].reshape(32, 32, 3).astype(np.uint8), (64, 64), interpolation=cv2.INTER_CUBIC)
    inner = (slice(6, -6), slice(6, -6))
    score = {k: psnr(back_project(frames[:k], start, 2.0)[inner], truth[inner]) for k in (1, 4)}
    assert score[4] > score[1] + 1.0 and score[4] > psnr(start[inner], truth[inner])

def _textured_scene(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = sum(blob(200, 200, rng.uniform(40, 160), rng.uniform(40, 160), rng.uniform(4, 9)).astype(np.float64) - 20
              for _ in range(25))
    return np.clip(img / img.max() * 200 + 30, 0, 255).astype(np.uint8)


def test_follow_moves_a_crop_into_another_observations_crop():
    """`track_filter.follow`: a crop cut through one source→crop matrix, moved into another's crop, matches the
    crop cut straight through the other (a shifted, rotated, rescaled face)."""
    from pipeline.lab.eval_video import psnr
    from pipeline.lab.track_filter import follow

    frame = _textured_scene()
    m1, m2 = face_matrix(98.0, 101.0, 90), face_matrix(103.5, 97.0, 84, angle=6)
    moved = follow(bicubic_crop(frame, m1), m1, m2)
    inner = (slice(16, -16), slice(16, -16))
    direct = bicubic_crop(frame, m2)
    assert psnr(np.clip(moved + 0.5, 0, 255).astype(np.uint8)[inner], direct[inner]) > 35
    assert psnr(bicubic_crop(frame, m1)[inner], direct[inner]) < 25  # not the same crop to begin with


def test_flow_onto_moves_an_image_by_the_motion_between_guide_and_target():
    """`track_filter.flow_onto`: an output that moved with its guide (the camera's crop) is put back where the
    target shows the face, by the optical flow between guide and target."""
    from pipeline.lab.eval_video import psnr
    from pipeline.lab.track_filter import flow_onto

    target = bicubic_crop(_textured_scene(3), face_matrix(100.0, 100.0, 110))
    moved = cv2.warpAffine(target, np.float32([[1, 0, 2.5], [0, 1, -1.5]]), (CROP, CROP), borderMode=cv2.BORDER_REPLICATE)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    back = np.clip(flow_onto(moved.astype(np.float32), moved, target.astype(np.float32), dis) + 0.5, 0, 255)
    inner = (slice(12, -12), slice(12, -12))
    assert psnr(back.astype(np.uint8)[inner], target[inner]) > psnr(moved[inner], target[inner]) + 8


def _track(frames: list[np.ndarray], clean: list[np.ndarray], m: np.ndarray):
    from pipeline.lab.eval_video import Obs

    obs = []
    for i, (x, t) in enumerate(zip(frames, clean)):
        o = Obs(1, i, m, x, None)
        o.truth, o.bicubic = t, x
        obs.append(o)
    return obs


def test_recursive_filter_damps_noise_and_follows_a_change():
    """`track_filter.recursive_filter` on a still face with fresh noise each frame: closer to the truth and
    steadier than the frames; when the face changes, the new frame wins, not the past."""
    from pipeline.lab.eval_video import psnr, temporal_error
    from pipeline.lab.track_filter import recursive_filter

    rng = np.random.default_rng(0)
    m = face_matrix(100.0, 100.0, 120)
    still = bicubic_crop(_textured_scene(1), m)
    changed = bicubic_crop(_textured_scene(2), m)
    clean = [still] * 8 + [changed] * 4
    noisy = [np.clip(c + rng.normal(0, 3, c.shape), 0, 255).astype(np.uint8) for c in clean]
    obs = _track(noisy, clean, m)
    out = recursive_filter(obs, alpha=0.6, tau=6.0)
    as_u8 = {f: np.clip(x + 0.5, 0, 255).astype(np.uint8) for f, x in out.items()}
    assert psnr(as_u8[7], still) > psnr(noisy[7], still) + 1.0
    assert temporal_error(obs[:8], lambda o: out[o.frame])[0] < 0.8 * temporal_error(obs[:8], "model")[0]
    assert psnr(as_u8[8], changed) > psnr(as_u8[8], still) + 5  # the change is not smeared with the past
    backward = recursive_filter(obs, alpha=0.6, tau=6.0, reverse=True)
    assert psnr(np.clip(backward[0] + 0.5, 0, 255).astype(np.uint8), still) > psnr(noisy[0], still) + 1.0


def test_reference_camera_comes_closer_to_the_truth_with_resolution():
    """`track_filter.reference_camera`: the truth seen at the crop's source resolution and resized back, nearer
    to the truth as the camera resolves more."""
    from pipeline.lab.eval_video import Obs, psnr
    from pipeline.lab.track_filter import reference_camera

    truth = bicubic_crop(_textured_scene(), face_matrix(100.0, 100.0, 120))
    o = Obs(1, 0, face_matrix(50.0, 50.0, 24), None, None)
    o.truth = truth
    scores = [psnr(reference_camera(o, k), truth) for k in (1.0, 1.5, 3.0)]
    assert scores[0] < scores[1] < scores[2]


def test_linear_restoration_undoes_a_linear_loss():
    """`track_probe.linear_restoration`: a slight blur (a linear loss, invertible in the pass band) is largely
    undone on the held-out frames; an input without loss stays as it is."""
    from pipeline.lab.track_probe import linear_restoration

    rng = np.random.default_rng(0)
    clean = [cv2.resize(_textured_scene(s)[40:160, 40:160], (32, 32), interpolation=cv2.INTER_AREA) for s in range(12)]
    blurred = [(cv2.GaussianBlur(c, (0, 0), 0.8) + rng.normal(0, 0.5, c.shape)).clip(0, 255).astype(np.uint8)
               for c in clean]
    r = linear_restoration([(b, c, c) for b, c in zip(blurred, clean)])
    assert r["scored"] == 6 and r["restored_psnr"] > r["coded_psnr"] + 6
    assert linear_restoration([(c, c, c) for c in clean])["restored_psnr"] > 45


def test_yuv420_round_trip_keeps_the_picture_and_its_colours():
    """`truth.yuv420_round_trip`: a real photo through the simulated camera's bgr24 → yuv420p → bgr24 (no codec)
    stays close to itself and keeps its mean colour: the simulated camera no longer darkens its frames, which a
    real camera capturing in YUV does not do (engines/MODEL_CARD.md, rule 5)."""
    from pipeline.lab.eval_video import psnr
    from pipeline.lab.truth import yuv420_round_trip

    require(IMAGES / "obama_1.jpg")
    img = cv2.resize(cv2.imread(str(IMAGES / "obama_1.jpg")), (320, 180), interpolation=cv2.INTER_AREA)
    back = yuv420_round_trip(img)
    assert back.shape == img.shape and psnr(back, img) > 30
    shift = (back.astype(float) - img).mean((0, 1))
    assert np.abs(shift).max() < 0.2, shift
