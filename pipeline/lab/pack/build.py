#!/usr/bin/env python3
"""Rebuild the training pack (clips/) from sources.csv.

Sources: either fetched bare git snapshots (--mirror DIR, containing owner+name/repo as made by
the `fetch` tool) or a flat folder of files (--files DIR) named '<owner>__<name>__<path with / and ! -> __>'.
Paths like 'misc/Input.zip!Input/00002.mp4' mean: member 'Input/00002.mp4' of zip 'misc/Input.zip'.
Only stdlib + ffmpeg/ffprobe on PATH.  Usage:
  python -m pipeline.lab.pack.build --csv pipeline/lab/pack/sources.csv --mirror DIR --out pack [--check CLIPS]
"""
import argparse
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile


def flat_name(repo, path):
    return (repo + '/' + path).replace('/', '__').replace('!', '__')

def fetch_bytes(row, mirror, files):
    repo, path, commit = row['repo'], row['path_in_repo'], row['commit']
    if files:
        return open(os.path.join(files, flat_name(repo, path)), 'rb').read()
    gitdir = os.path.join(mirror, repo.replace('/', '+'), 'repo')
    zpath, member = (path.split('!', 1) + [None])[:2]
    try:
        data = subprocess.check_output(['git', '--git-dir', gitdir, 'show', f'{commit}:{zpath}'], stderr=subprocess.PIPE)
    except subprocess.CalledProcessError:
        sys.exit(f'cannot read {repo}@{commit}:{zpath} from {gitdir} (fetch the repository first)')
    if member:
        data = zipfile.ZipFile(io.BytesIO(data)).read(member)
    return data

def encode(src, dst, row):
    x, y, c, s = (int(row[k]) for k in ('crop_x', 'crop_y', 'crop_size', 'out_size'))
    vf = f'crop={c}:{c}:{x}:{y}'
    if s != c:
        vf += f',scale={s}:{s}:flags=lanczos'
    vf += ',format=yuv420p'
    cmd = ['ffmpeg', '-nostdin', '-v', 'error', '-y', '-ss', str(row['start_s']), '-i', src, '-t', str(row['duration_s']),
           '-map', '0:v:0', '-an', '-sn', '-dn', '-vf', vf, '-c:v', 'libx264', '-preset', 'slow', '-crf', '16',
           '-pix_fmt', 'yuv420p', '-threads', '1', '-map_metadata', '-1', '-fflags', '+bitexact', '-flags:v', '+bitexact',
           '-movflags', '+faststart', dst]
    subprocess.run(cmd, check=True)

def nframes(f):
    j = json.loads(subprocess.check_output(['ffprobe', '-v', 'error', '-count_frames', '-select_streams', 'v:0',
        '-show_entries', 'stream=nb_read_frames,width,height,r_frame_rate', '-of', 'json', f]))['streams'][0]
    return int(j['nb_read_frames']), j['width'], j['height'], j['r_frame_rate']

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--csv', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sources.csv'))
    ap.add_argument('--mirror', help='folder of fetched repositories, one owner+name folder each')
    ap.add_argument('--files', default=None, help='flat folder of source files instead of --mirror')
    ap.add_argument('--out', required=True)
    ap.add_argument('--check', default=None, help='existing pack dir: compare sha256 and frame counts')
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = list(csv.DictReader(open(a.csv, newline='')))
    bad = 0
    with tempfile.TemporaryDirectory() as td:
        for i, row in enumerate(rows):
            ext = os.path.splitext(row['path_in_repo'])[1] or '.mp4'
            src = os.path.join(td, f'src{i}{ext}')
            open(src, 'wb').write(fetch_bytes(row, a.mirror, a.files))
            dst = os.path.join(a.out, row['file'])
            encode(src, dst, row)
            os.remove(src)
            msg = f"{row['file']}: {nframes(dst)}"
            if a.check:
                ref = os.path.join(a.check, row['file'])
                h1 = hashlib.sha256(open(dst, 'rb').read()).hexdigest(); h2 = hashlib.sha256(open(ref, 'rb').read()).hexdigest()
                n1, n2 = nframes(dst)[0], nframes(ref)[0]
                msg += f" sha256 {'same' if h1 == h2 else 'DIFFERS'}, frames {n1} vs {n2}"
                bad += (n1 != n2)
            print(msg, flush=True)
    tot = sum(os.path.getsize(os.path.join(a.out, r['file'])) for r in rows)
    print(f'{len(rows)} clips, {len({r["person"] for r in rows})} people, {tot/1e6:.1f} MB')
    sys.exit(1 if bad else 0)

if __name__ == '__main__':
    main()
