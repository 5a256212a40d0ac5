#!/usr/bin/env python3
"""Writes a single-layer container image as a docker-archive tar, from a directory.

    hack/mkimage.py ROOT_DIR OUT.tar NAME:TAG CONFIG_JSON

ROOT_DIR becomes the image's only layer (owners set to root, modes and symlinks kept,
entries sorted, mtimes zeroed: the same input gives the same bytes). CONFIG_JSON is the
image config's "config" object (Entrypoint, Cmd, User, Env, WorkingDir, ...). The archive
is what `ctr images import` reads (manifest.json + config + layer), so images are built
from local files with no registry and no container engine (hack/real-node.sh images).
"""

import hashlib
import io
import json
import os
import sys
import tarfile


def layer_bytes(root: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                entries.append(os.path.join(dirpath, name))
        for path in sorted(entries):
            arc = os.path.relpath(path, root)
            info = tar.gettarinfo(path, arcname=arc)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    root, out, ref, config_json = sys.argv[1:]
    layer = layer_bytes(root)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": json.loads(config_json),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "hack/mkimage.py " + os.path.basename(root)}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": ["layer.tar"]}]
    tmp = out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (
            ("layer.tar", layer),
            (config_name, config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
